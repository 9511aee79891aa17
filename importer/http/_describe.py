"""Read what a Graph or Assets error response says: code, request id, field keys, messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _never_connected(exc: Exception) -> bool:
    """True when a ConnectionError happened before anything was sent (refused, DNS, unreachable)."""
    text = repr(exc)
    return any(s in text for s in ("NewConnectionError", "Connection refused", "NameResolutionError"))


def _request_id(headers: Mapping[str, str], body_id: str | None) -> str | None:
    if body_id:
        return body_id
    for name in ("request-id", "client-request-id", "x-arequestid", "atl-traceid", "x-request-id"):
        value = headers.get(name)
        if value:
            return value
    return None


def _describe_error(
    body: Any, headers: Mapping[str, str]
) -> tuple[str | None, str | None, dict[str, str], list[str]]:
    """Pull the error code, request id, field keys and messages out of a Graph or Assets error body."""
    code: str | None = None
    body_request_id: str | None = None
    fields: dict[str, str] = {}
    messages: list[str] = []
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # Graph: {"error": {"code", "message", "innerError": {...}}}
            code = str(err["code"]) if err.get("code") else None
            if isinstance(err.get("message"), str):
                messages.append(err["message"])
            inner = err.get("innerError") or err.get("innererror")
            while isinstance(inner, dict):
                body_request_id = body_request_id or inner.get("request-id") or inner.get("client-request-id")
                if inner.get("code") and inner.get("code") != code and not str(inner["code"]).isdigit():
                    code = f"{code}/{inner['code']}" if code else str(inner["code"])
                inner = inner.get("innerError") or inner.get("innererror")
        elif isinstance(err, str):  # OAuth: {"error": "invalid_client", "error_codes": [...]}
            code = err
            codes = body.get("error_codes")
            if isinstance(codes, list) and codes:
                code = f"{err}/AADSTS{codes[0]}"
            body_request_id = body.get("correlation_id") or body.get("trace_id")
        errors = body.get("errors")  # Assets/Jira: {"errorMessages": [...], "errors": {key: msg}}
        if isinstance(errors, dict):
            fields = {str(k): str(v) for k, v in errors.items()}
        msgs = body.get("errorMessages")
        if isinstance(msgs, list):
            messages.extend(str(m) for m in msgs)
        if code is None and isinstance(body.get("code"), str):
            code = body["code"]
    return code, _request_id(headers, body_request_id), fields, messages
