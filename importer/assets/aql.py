"""AQL text built safely: every value and attribute name goes through ``aql_quote``.

AQL quotes names and values with double quotes and escapes a literal ``"`` with a backslash
(assets-api.md §6); we escape the backslash itself too, so a value ending in ``\\`` cannot
swallow the closing quote. Newlines and non-ASCII text pass through inside the quotes.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["aql_in", "aql_quote", "aql_type"]


def aql_quote(value: str) -> str:
    """Quote ``value`` for AQL: ``a "b" \\c`` becomes ``"a \\"b\\" \\\\c"``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def aql_type(type_id: str) -> str:
    """``objectTypeId = N`` (the id is checked to be numeric, so it needs no quoting)."""
    if not (type_id.isascii() and type_id.isdigit()):
        raise ValueError(f"object type id must be numeric, got {type_id!r}")
    return f"objectTypeId = {type_id}"


def aql_in(type_id: str, attribute: str, values: Iterable[str]) -> str:
    """``objectTypeId = N AND "<attribute>" IN ("v1", "v2", ...)``."""
    quoted = ", ".join(aql_quote(v) for v in values)
    return f"{aql_type(type_id)} AND {aql_quote(attribute)} IN ({quoted})"
