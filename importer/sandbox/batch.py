"""Graph JSON batching (``POST /v1.0/$batch``): up to 20 inner requests, answered unordered.

Inner requests run through the same Graph dispatcher (same auth, permissions and bodies) with
the outer request's ``Authorization`` unless they carry their own. Under fault injection an
inner request can get its own 429 or 503 with its own ``Retry-After`` inside the item, as in
the real service, where each inner request is throttled on its own.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from importer.sandbox import odata
from importer.sandbox.base import SandboxRequest, SandboxResponse
from importer.sandbox.faults import Faults
from importer.sandbox.odata import GraphError

__all__ = ["MAX_BATCH", "run_batch"]

MAX_BATCH = 20
_ITEM_HEADERS = (
    "Content-Type",
    "Cache-Control",
    "OData-Version",
    "Location",
    "Retry-After",
    "Preference-Applied",
)


def run_batch(
    request: SandboxRequest, dispatch: Callable[[SandboxRequest], SandboxResponse], faults: Faults | None
) -> dict[str, Any]:
    """The ``{"responses": [...]}`` body for a batch request; raises ``GraphError`` for a bad batch."""
    try:
        payload = request.json()
    except ValueError as exc:
        raise GraphError(400, "BadRequest", "Invalid batch payload format.") from exc
    items = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise GraphError(400, "BadRequest", "Invalid batch payload format.")
    if len(items) > MAX_BATCH:
        raise GraphError(
            400, "BadRequest", f"Exceeded maximum number of requests per batch. Maximum is {MAX_BATCH}."
        )
    ids = [str(item.get("id")) if isinstance(item, dict) else "" for item in items]
    well_formed = all(isinstance(i, dict) and i.get("url") and i.get("id") for i in items)
    if len(set(ids)) != len(ids) or not well_formed:
        raise GraphError(
            400, "BadRequest", "Invalid batch payload format: each request needs a unique id, method and url."
        )
    responses = [_item(request, item, dispatch, faults) for item in items]
    random.Random(zlib.crc32("|".join(ids).encode())).shuffle(responses)  # unordered, like the real service
    return {"responses": responses}


def _item(
    outer: SandboxRequest,
    item: dict[str, Any],
    dispatch: Callable[[SandboxRequest], SandboxResponse],
    faults: Faults | None,
) -> dict[str, Any]:
    rid, crid = odata.request_ids(outer)
    fault = faults.batch_item() if faults is not None else None
    if fault is not None and fault.action == "status":
        headers = {"Content-Type": "application/json"}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if fault.status == 429:
            code, message = "TooManyRequests", "Please retry again later."
        else:
            code, message = "serviceNotAvailable", "Service unavailable"
        body = odata.graph_error_body(code, message, rid, crid)
        return {"id": item["id"], "status": fault.status, "headers": headers, "body": body}
    url = str(item["url"])
    parts = urlsplit(url if url.startswith("/") else "/" + url)
    if url.lower().startswith(("http:", "https:")) or parts.path.startswith("/$batch"):
        response = odata.graph_response(
            400,
            odata.graph_error_body("BadRequest", "Invalid request URL in batch.", rid, crid),
            route="",
            rid=rid,
            crid=crid,
        )
    else:
        headers_in = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        headers_in.setdefault("authorization", outer.headers.get("authorization", ""))
        response = dispatch(
            SandboxRequest(
                method=str(item.get("method", "GET")).upper(),
                path=unquote("/v1.0" + parts.path),
                raw_path="/v1.0" + parts.path + (f"?{parts.query}" if parts.query else ""),
                query=parse_qs(parts.query, keep_blank_values=True),
                headers=headers_in,
                body=json.dumps(item["body"]).encode() if item.get("body") is not None else b"",
                base_url=outer.base_url,
            )
        )
    headers = {k: v for k, v in response.headers.items() if k in _ITEM_HEADERS}
    headers["Content-Type"] = response.content_type
    body_out = response.body.decode() if isinstance(response.body, bytes) else response.body
    return {"id": item["id"], "status": response.status, "headers": headers, "body": body_out}
