"""What we keep of Assets' JSON: frozen values parsed at the client boundary (pure, no I/O).

Assets answers with large documents (an object carries its avatar, its type with icon links,
timestamps...); these dataclasses keep only what the sync uses. Ids are strings on both
flavours: Cloud sends ``"88"``, Data Center sends ``88``, and both become ``"88"`` here.

An attribute's *kind* names how its values are written and compared (see ``values.py``); it is
derived from the attribute's ``type`` code and, for ``type`` 0 ("Default"), from
``defaultType.id`` (assets-api.md §3.1). When ``type`` is absent, as in several spec examples,
a ``defaultType`` implies 0 and a ``referenceObjectTypeId`` implies 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DEFAULT_TYPE_IDS",
    "KINDS",
    "TYPE_CODES",
    "AssetsAttribute",
    "AssetsIcon",
    "AssetsObject",
    "AssetsObjectType",
    "AssetsReferenceType",
    "AssetsSchema",
    "AssetsStatus",
    "AttributeKind",
    "NormScalar",
    "NormValue",
    "ResolvedSchema",
    "ResolvedType",
    "as_id",
    "kind_of",
    "parse_attribute",
    "parse_icon",
    "parse_object_type",
    "parse_reference_type",
    "parse_schema",
    "parse_status",
]

AttributeKind = Literal[
    "text", "textarea", "integer", "double", "boolean", "date", "time", "datetime", "url",
    "email", "select", "ipaddress", "reference", "user", "status", "group", "other",
]  # fmt: skip
KINDS: tuple[AttributeKind, ...] = (
    "text", "textarea", "integer", "double", "boolean", "date", "time", "datetime", "url",
    "email", "select", "ipaddress", "reference", "user", "status", "group",
)  # fmt: skip

NormScalar = str | int | float | bool
NormValue = str | int | float | bool | None | tuple[NormScalar, ...]
"""A value as planning compares it: one scalar, None (no value) or a sorted tuple (multi-value)."""

# defaultType.id -> kind, for attributes of type 0 ("Default"); -1 ("None") has no kind.
DEFAULT_TYPE_IDS: Mapping[int, AttributeKind] = {
    0: "text", 1: "integer", 2: "boolean", 3: "double", 4: "date", 5: "time", 6: "datetime",
    7: "url", 8: "email", 9: "textarea", 10: "select", 11: "ipaddress",
}  # fmt: skip
# kind -> (type code, defaultTypeId or None) for creating attributes.
TYPE_CODES: Mapping[AttributeKind, tuple[int, int | None]] = {
    **{kind: (0, code) for code, kind in DEFAULT_TYPE_IDS.items()},
    "reference": (1, None), "user": (2, None), "group": (4, None), "status": (7, None),
}  # fmt: skip
_OTHER_TYPES: Mapping[int, AttributeKind] = {1: "reference", 2: "user", 4: "group", 7: "status"}


def as_id(value: object) -> str | None:
    """An Assets id as a string (Cloud sends strings, Data Center integers); None when absent."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        text = str(value).strip()
        return text or None
    return None


def _int(value: object, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return default
    return default


def kind_of(type_code: int | None, default_type_id: int | None) -> AttributeKind:
    """The kind of an attribute from its ``type`` code and ``defaultType.id`` ("other" if unsupported)."""
    if type_code == 0 or (type_code is None and default_type_id is not None):
        return DEFAULT_TYPE_IDS.get(default_type_id if default_type_id is not None else -1, "other")
    return _OTHER_TYPES.get(type_code if type_code is not None else -1, "other")


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetsSchema:
    """An object schema."""

    id: str
    key: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetsObjectType:
    """An object type of a schema."""

    id: str
    name: str
    schema_id: str | None = None
    parent_id: str | None = None
    icon_id: str | None = None
    abstract: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetsAttribute:
    """An object type attribute (its definition, not a value)."""

    id: str
    name: str
    kind: AttributeKind
    type_code: int | None = None
    default_type: int | None = None  # defaultType.id for type 0
    reference_type_id: str | None = None  # the *object type* a reference points to
    reference_kind_id: str | None = None  # the reference type ("Reference", "Depends on", ...)
    min_cardinality: int = 0
    max_cardinality: int = 1  # -1 = unlimited
    unique: bool = False
    label: bool = False
    editable: bool = True
    system: bool = False
    options: tuple[str, ...] = ()
    object_type_id: str | None = None

    @property
    def multi(self) -> bool:
        """True when the attribute holds more than one value (maximumCardinality -1 or > 1)."""
        return self.max_cardinality != 1


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetsStatus:
    """A status type (global when ``schema_id`` is None)."""

    id: str
    name: str
    category: int = 0  # 0 inactive (red), 1 active (green), 2 pending (yellow)
    schema_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetsIcon:
    """A global icon usable for object types."""

    id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetsReferenceType:
    """A reference (link) type, e.g. "Reference" or "Depends on"."""

    id: str
    name: str
    schema_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetsObject:
    """An object as read, with its values normalised per attribute kind.

    ``key`` is the value of our key attribute (the Graph id), None for objects we do not manage;
    ``object_key`` is Assets' own key (``ENTRA-12``), safe to log; ``values`` are keyed by
    attribute name.
    """

    id: str
    type_id: str
    key: str | None
    label: str | None
    object_key: str | None
    values: Mapping[str, NormValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedType:
    """A managed object type with its attributes, resolved by name at the start of a run."""

    type: AssetsObjectType
    attributes: Mapping[str, AssetsAttribute]  # by attribute name
    key_attribute: AssetsAttribute
    label_attribute: AssetsAttribute | None = None
    _names: Mapping[str, str] = field(init=False, repr=False, compare=False)  # attribute id -> name

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", {attr.id: name for name, attr in self.attributes.items()})

    @property
    def id(self) -> str:
        """The object type id."""
        return self.type.id

    @property
    def name(self) -> str:
        """The object type name."""
        return self.type.name

    def attribute(self, name: str) -> AssetsAttribute:
        """The attribute called ``name``; KeyError naming it when the type has none."""
        try:
            return self.attributes[name]
        except KeyError:
            raise KeyError(f"object type {self.type.name!r} has no attribute {name!r}") from None

    def name_of(self, attribute_id: str) -> str | None:
        """The name under which the attribute with this id is known here, or None."""
        return self._names.get(attribute_id)

    def attribute_by_id(self, attribute_id: str) -> AssetsAttribute | None:
        """The attribute with this id, or None."""
        name = self._names.get(attribute_id)
        return None if name is None else self.attributes[name]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedSchema:
    """The configured schema with its managed types and the statuses it offers, by name."""

    schema: AssetsSchema
    types: Mapping[str, ResolvedType]
    statuses: Mapping[str, AssetsStatus]

    def type(self, name: str) -> ResolvedType:
        """The managed type called ``name``."""
        try:
            return self.types[name]
        except KeyError:
            raise KeyError(f"object type {name!r} is not managed in schema {self.schema.key}") from None

    def status_id(self, name: str) -> str:
        """The id of the status called ``name`` (case-insensitive)."""
        wanted = name.strip().casefold()
        for status in self.statuses.values():
            if status.name.casefold() == wanted:
                return status.id
        raise KeyError(f"status {name!r} does not exist in schema {self.schema.key}")


# -- parsers: raw JSON -> values ----------------------------------------------------------------


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_schema(raw: Mapping[str, Any]) -> AssetsSchema:
    """An ``ObjectSchema`` document."""
    return AssetsSchema(
        id=as_id(raw.get("id")) or "",
        key=str(raw.get("objectSchemaKey") or ""),
        name=str(raw.get("name") or ""),
    )


def parse_object_type(raw: Mapping[str, Any]) -> AssetsObjectType:
    """An ``ObjectType`` document."""
    return AssetsObjectType(
        id=as_id(raw.get("id")) or "",
        name=str(raw.get("name") or ""),
        schema_id=as_id(raw.get("objectSchemaId")),
        parent_id=as_id(raw.get("parentObjectTypeId")),
        icon_id=as_id(_dict(raw.get("icon")).get("id")),
        abstract=bool(raw.get("abstractObjectType", False)),
    )


def parse_attribute(raw: Mapping[str, Any], *, object_type_id: str | None = None) -> AssetsAttribute:
    """An ``ObjectTypeAttribute`` document (``type`` inferred when absent, see the module docstring)."""
    default = _dict(raw.get("defaultType"))
    default_id = _int(default.get("id"), -1) if default else None
    type_code: int | None = _int(raw.get("type"), -1) if raw.get("type") is not None else None
    ref_type_id = as_id(raw.get("referenceObjectTypeId")) or as_id(
        _dict(raw.get("referenceObjectType")).get("id")
    )
    if type_code is None:
        if default:
            type_code = 0
        elif ref_type_id is not None:
            type_code = 1
    if type_code == 1 and ref_type_id is None:
        ref_type_id = as_id(raw.get("typeValue"))
    options_raw = raw.get("options")
    options = (
        tuple(o.strip() for o in options_raw.split(",") if o.strip()) if isinstance(options_raw, str) else ()
    )
    return AssetsAttribute(
        id=as_id(raw.get("id")) or "",
        name=str(raw.get("name") or ""),
        kind=kind_of(type_code, default_id),
        type_code=type_code,
        default_type=default_id,
        reference_type_id=ref_type_id if type_code == 1 else None,
        reference_kind_id=as_id(_dict(raw.get("referenceType")).get("id")) if type_code == 1 else None,
        min_cardinality=_int(raw.get("minimumCardinality"), 0),
        max_cardinality=_int(raw.get("maximumCardinality"), 1),
        unique=bool(raw.get("uniqueAttribute", False)),
        label=bool(raw.get("label", False)),
        editable=bool(raw.get("editable", True)),
        system=bool(raw.get("system", False)),
        options=options,
        object_type_id=as_id(_dict(raw.get("objectType")).get("id")) or object_type_id,
    )


def parse_status(raw: Mapping[str, Any]) -> AssetsStatus:
    """A ``Status`` document."""
    return AssetsStatus(
        id=as_id(raw.get("id")) or "",
        name=str(raw.get("name") or ""),
        category=_int(raw.get("category"), 0),
        schema_id=as_id(raw.get("objectSchemaId")),
    )


def parse_icon(raw: Mapping[str, Any]) -> AssetsIcon:
    """An ``Icon`` document."""
    return AssetsIcon(id=as_id(raw.get("id")) or "", name=str(raw.get("name") or ""))


def parse_reference_type(raw: Mapping[str, Any]) -> AssetsReferenceType:
    """A ``ReferenceType`` document."""
    return AssetsReferenceType(
        id=as_id(raw.get("id")) or "",
        name=str(raw.get("name") or ""),
        schema_id=as_id(raw.get("objectSchemaId")),
    )
