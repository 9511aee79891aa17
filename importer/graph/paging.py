"""Follow a Graph collection page by page, verbatim, until the round ends.

Query parameters go on the first request only (they are built into the first URL); every later
request is the server's ``@odata.nextLink`` sent as it came. A link seen twice raises
``PagingLoopError``; a link to another origin (which would receive our bearer token) or a page
that is not a Graph collection raises ``BrokenPagingError``. Only the current page is held: the
caller parses its items into records before asking for the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from importer.errors import PagingLoopError
from importer.graph.errors import BrokenPagingError
from importer.graph.models import Page
from importer.http import route_template

__all__ = ["iter_pages", "origin_of", "page_of"]


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def page_of(body: Any, url: str) -> Page:
    """Check that ``body`` is a Graph collection page and take its items and links."""
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise BrokenPagingError(f"{route_template(url)}: the response is not a Graph collection page")
    next_link = body.get("@odata.nextLink")
    delta_link = body.get("@odata.deltaLink")
    if next_link is not None and not (isinstance(next_link, str) and next_link):
        raise BrokenPagingError(f"{route_template(url)}: the page has an unusable @odata.nextLink")
    if delta_link is not None and not (isinstance(delta_link, str) and delta_link):
        raise BrokenPagingError(f"{route_template(url)}: the page has an unusable @odata.deltaLink")
    return Page(items=body["value"], next_link=next_link, delta_link=delta_link)


def iter_pages(fetch: Callable[[str], Any], url: str, *, origin: str) -> Iterator[Page]:
    """Yield each page from ``url`` on, following ``@odata.nextLink`` until a page has none.

    Args:
        fetch: GET a URL exactly as given and return its parsed JSON body.
        url: the first URL, query parameters included.
        origin: the only origin links may point to (the Graph root's).
    """
    seen: set[str] = set()
    next_url: str | None = url
    while next_url is not None:
        if next_url in seen:
            raise PagingLoopError(route_template(next_url))  # a repeated link would never end
        if origin_of(next_url) != origin:
            raise BrokenPagingError(f"{route_template(next_url)}: a paging link points outside {origin}")
        seen.add(next_url)
        page = page_of(fetch(next_url), next_url)
        yield page
        next_url = page.next_link
