"""The REST routes under ``/jsm/assets/workspace/{workspaceId}/v1`` (auth and limits are done by then).

Each handler takes the request, the path's ids and a ``Renderer`` and returns (status, body);
it runs with the store lock held. Route templates use ``{id}`` for every id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from importer.sandbox.aql import AqlSyntaxError, parse_aql
from importer.sandbox.assets_model import ApiFailure, ObjRec, as_int
from importer.sandbox.assets_objects import create_object, delete_object, parse_object_in, update_object
from importer.sandbox.assets_query import run_query
from importer.sandbox.assets_render import Renderer
from importer.sandbox.assets_schema import parse_attribute_in, parse_status_in, parse_type_in
from importer.sandbox.assets_store import AssetsStore
from importer.sandbox.base import SandboxRequest

__all__ = ["MAX_AQL_PAGE", "ROUTES", "Route", "find_route"]

MAX_AQL_PAGE = 1000  # the sandbox caps maxResults here and echoes the cap (ScriptRunner: "max 1000")
Handler = Callable[[AssetsStore, SandboxRequest, tuple[str, ...], Renderer], tuple[int, Any]]
Route = tuple[str, re.Pattern[str], str, Handler]


def _int_arg(req: SandboxRequest, name: str, default: int, *, minimum: int) -> int:
    raw = req.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiFailure(400, f"The query parameter {name} must be an integer") from None
    if value < minimum:
        raise ApiFailure(400, f"The query parameter {name} must be at least {minimum}")
    return value


def _bool_arg(req: SandboxRequest, name: str, default: bool) -> bool:
    raw = req.arg(name)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise ApiFailure(400, f"The query parameter {name} must be true or false")
    return raw.lower() == "true"


def _body(req: SandboxRequest) -> Any:
    try:
        return req.json()
    except (ValueError, UnicodeDecodeError):
        raise ApiFailure(400, "The request body is not valid JSON") from None


def _schema_id(store: AssetsStore, raw: str) -> int:
    if int(raw) not in store.schemas:
        raise ApiFailure(404, f"Object schema {raw} was not found")
    return int(raw)


def _type_id(store: AssetsStore, raw: str) -> int:
    if int(raw) not in store.types:
        raise ApiFailure(404, f"Object type {raw} was not found")
    return int(raw)


def _schema_list(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    start = _int_arg(req, "startAt", 0, minimum=0)
    limit = _int_arg(req, "maxResults", 25, minimum=1)
    counts = _bool_arg(req, "includeCounts", False)
    schemas = sorted(store.schemas.values(), key=lambda s: s.id)
    page = schemas[start : start + limit]
    last = start + len(page) >= len(schemas)
    values = [r.schema(s, counts=counts) for s in page]
    return 200, {
        "startAt": start,
        "maxResults": limit,
        "total": len(schemas),
        "values": values,
        "isLast": last,
        "last": last,
    }


def _schema_get(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    return 200, r.schema(store.schemas[_schema_id(store, ids[0])], counts=True)


def _schema_types(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    schema_id = _schema_id(store, ids[0])
    types = [t for t in store.types.values() if t.schema_id == schema_id]
    if req.path.endswith("/flat"):
        query, exclude = (req.arg("query") or "").casefold(), (req.arg("exclude") or "").casefold()
        counts = _bool_arg(req, "includeObjectCounts", False)
        types = [t for t in types if query in t.name.casefold() and t.name.casefold() != exclude]
        return 200, [r.object_type(t, count=counts) for t in types]
    if _bool_arg(req, "excludeAbstract", False):
        types = [t for t in types if not t.abstract]
    return 200, [r.object_type(t, count=True) for t in types]


def _schema_attributes(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    schema_id = _schema_id(store, ids[0])
    extended, editable = _bool_arg(req, "extended", False), _bool_arg(req, "onlyValueEditable", False)
    query = (req.arg("query") or "").strip('"').casefold()
    return 200, [
        r.attribute(attr, with_type=extended)
        for type_rec in store.types.values()
        if type_rec.schema_id == schema_id
        for attr in store.attrs_of(type_rec.id)
        if query in attr.name.casefold() and not (editable and attr.system)
    ]


def _type_get(store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer) -> tuple[int, Any]:
    return 200, r.object_type(store.types[_type_id(store, ids[0])], count=True)


def _type_attributes(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    attrs = store.attrs_of(_type_id(store, ids[0]))
    query = (req.arg("query") or "").strip('"').casefold()
    attrs = [a for a in attrs if query in a.name.casefold()]
    if _bool_arg(req, "onlyValueEditable", False):
        attrs = [a for a in attrs if not a.system]
    if _bool_arg(req, "orderByName", False):
        attrs.sort(key=lambda a: a.name.casefold())
    return 200, [r.attribute(a, with_type=True) for a in attrs]


def _type_create(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    return 201, r.object_type(store.add_type(parse_type_in(_body(req))), count=True)


def _attr_create(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    type_id = _type_id(store, ids[0])
    return 201, r.attribute(
        store.add_attribute(type_id, parse_attribute_in(_body(req), partial=False)), with_type=False
    )


def _attr_update(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    type_id = _type_id(store, ids[0])
    fields = parse_attribute_in(_body(req), partial=True)
    return 200, r.attribute(store.update_attribute(type_id, int(ids[1]), fields), with_type=False)


def _attr_delete(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    store.delete_attribute(int(ids[0]))
    return 200, None


def _optional_schema(req: SandboxRequest) -> int | None:
    raw = req.arg("objectSchemaId")
    return None if raw in (None, "") else as_int(raw, "objectSchemaId")


def _statuses(store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer) -> tuple[int, Any]:
    if req.method.upper() == "POST":
        return 201, r.status(store.add_status(parse_status_in(_body(req))), created=True)
    return 200, [r.status(s) for s in store.statuses_for(_optional_schema(req))]


def _ref_types(store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer) -> tuple[int, Any]:
    schema_id, include_all = _optional_schema(req), _bool_arg(req, "includeAll", False)
    return 200, [
        r.ref_type(t)
        for t in store.ref_types.values()
        if include_all or t.schema_id is None or t.schema_id == schema_id
    ]


def _icons(store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer) -> tuple[int, Any]:
    return 200, [r.icon(icon_id) for icon_id in store.icons]


def _object_create(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    type_id, inputs = parse_object_in(_body(req), require_type=True)
    assert type_id is not None
    return 201, r.object(create_object(store, type_id, inputs))


def _object(store: AssetsStore, ref: str) -> ObjRec:
    obj = store.find_object(ref)
    if obj is None:
        raise ApiFailure(404, f"Object {ref} was not found")
    return obj


def _object_get(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    return 200, r.object(_object(store, ids[0]), attributes="full", extended=True)


def _object_attributes(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    obj = _object(store, ids[0])
    return 200, r.object(obj, attributes="full")["attributes"]


def _object_update(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    _object(store, ids[0])  # 404 before 400, as for a vanished object
    type_id, inputs = parse_object_in(_body(req), require_type=False)
    return 200, r.object(update_object(store, ids[0], type_id, inputs), attributes="full")


def _object_delete(
    store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer
) -> tuple[int, Any]:
    delete_object(store, ids[0])
    return 204, None


def _aql_query(req: SandboxRequest) -> str:
    body = _body(req)
    if not isinstance(body, dict) or not isinstance(body.get("qlQuery"), str):
        raise ApiFailure(400, errors={"qlQuery": "qlQuery is required"})
    return str(body["qlQuery"])


def _aql(store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer) -> tuple[int, Any]:
    start = _int_arg(req, "startAt", 0, minimum=0)
    limit = min(_int_arg(req, "maxResults", 25, minimum=1), MAX_AQL_PAGE)
    include = _bool_arg(req, "includeAttributes", True)
    try:
        node = parse_aql(_aql_query(req))
    except AqlSyntaxError as exc:
        raise ApiFailure(400, f"Invalid AQL: {exc}") from None
    total, objects = run_query(store, node, start=start, limit=limit)
    is_last = start + len(objects) >= total
    type_ids = list(dict.fromkeys(obj.type_id for obj in objects))
    body: dict[str, Any] = {"startAt": start, "maxResults": limit, "total": total}
    body["isLast"] = ("true" if is_last else "false") if store.is_last_as_string else is_last
    if not store.is_last_as_string:
        body["last"] = is_last  # the spec's example (the string form) has no "last"
    body["values"] = [r.object(obj, attributes="aql" if include else "none") for obj in objects]
    body["objectTypeAttributes"] = [
        r.attribute(a, with_type=True) for t in type_ids for a in store.attrs_of(t)
    ]
    return 200, body


def _aql_count(store: AssetsStore, req: SandboxRequest, ids: tuple[str, ...], r: Renderer) -> tuple[int, Any]:
    try:
        node = parse_aql(_aql_query(req))
    except AqlSyntaxError as exc:
        raise ApiFailure(400, f"Invalid AQL: {exc}") from None
    return 200, {"totalCount": run_query(store, node, start=0, limit=None)[0]}


def _route(method: str, pattern: str, handler: Handler) -> Route:
    template = re.sub(r"\(\[\^/\]\+\)|\(\\d\+\)", "{id}", pattern)
    return (method, re.compile(pattern), template, handler)


ROUTES: list[Route] = [
    _route("GET", r"/objectschema/list", _schema_list),
    _route("GET", r"/objectschema/(\d+)", _schema_get),
    _route("GET", r"/objectschema/(\d+)/objecttypes", _schema_types),
    _route("GET", r"/objectschema/(\d+)/objecttypes/flat", _schema_types),
    _route("GET", r"/objectschema/(\d+)/attributes", _schema_attributes),
    _route("POST", r"/objecttype/create", _type_create),
    _route("GET", r"/objecttype/(\d+)", _type_get),
    _route("GET", r"/objecttype/(\d+)/attributes", _type_attributes),
    _route("POST", r"/objecttypeattribute/(\d+)", _attr_create),
    _route("DELETE", r"/objecttypeattribute/(\d+)", _attr_delete),
    _route("PUT", r"/objecttypeattribute/(\d+)/(\d+)", _attr_update),
    _route("GET", r"/config/statustype", _statuses),
    _route("POST", r"/config/statustype", _statuses),
    _route("GET", r"/config/referencetype", _ref_types),
    _route("GET", r"/icon/global", _icons),
    _route("POST", r"/object/create", _object_create),
    _route("POST", r"/object/aql", _aql),
    _route("POST", r"/object/aql/totalcount", _aql_count),
    _route("GET", r"/object/([^/]+)", _object_get),
    _route("PUT", r"/object/([^/]+)", _object_update),
    _route("DELETE", r"/object/([^/]+)", _object_delete),
    _route("GET", r"/object/([^/]+)/attributes", _object_attributes),
]


def find_route(method: str, sub_path: str) -> tuple[Route | None, tuple[str, ...], str | None]:
    """(route, path ids, template) for the method and path; route None + template = 405, both None = 404."""
    path_template: str | None = None
    for route in ROUTES:
        match = route[1].fullmatch(sub_path)
        if match is None:
            continue
        if route[0] == method:
            return route, match.groups(), route[2]
        path_template = path_template or route[2]
    return None, (), path_template
