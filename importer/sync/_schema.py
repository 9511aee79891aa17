"""What a mapping needs from the Assets schema, and how plan values are shown to people."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from importer.mapping import compile_mapping
from importer.plan import Pending

if TYPE_CHECKING:
    from importer.assets import TypeRequirement
    from importer.config import Settings
    from importer.sync._model import RunResult

__all__ = ["requirements", "value_formatter"]


def requirements(settings: Settings) -> list[TypeRequirement]:
    """What the Assets schema must offer for this mapping (for resolve, ``schema plan`` and ``apply``)."""
    from importer.assets import AttributeRequirement, TypeRequirement

    compiled = compile_mapping(settings)
    by_name = {e.name: e for e in settings.mapping.object_types}
    out: list[TypeRequirement] = []
    for entry in settings.mapping.object_types:
        attrs = [AttributeRequirement(name=entry.key, kind="text", unique=True, required=True)]
        for attr in compiled[entry.name].attributes:
            ref_type = by_name[attr.reference].object_type if attr.reference else None
            attrs.append(
                AttributeRequirement(
                    name=attr.name,
                    kind=attr.kind,  # type: ignore[arg-type]  # mapping kinds are a subset of Assets kinds
                    reference_type=ref_type,
                    options=attr.options,
                    label=attr.name == entry.label,
                )
            )
        statuses: tuple[str, ...] = ()
        if settings.missing_policy(entry) != "ignore":
            mark = entry.mark
            attrs.append(
                AttributeRequirement(
                    name=mark.attribute,
                    kind=mark.type,
                    options=tuple(v for v in (mark.active, mark.value) if v) if mark.type == "select" else (),
                )
            )
            if mark.type == "status":
                statuses = tuple(v for v in (mark.active, mark.value) if v)
        out.append(
            TypeRequirement(
                name=entry.object_type,
                description=entry.description,
                icon=entry.icon,
                key_attribute=entry.key,
                label_attribute=entry.label,
                attributes=tuple(attrs),
                statuses=statuses,
            )
        )
    return out


_PERSONAL_KINDS = frozenset({"text", "textarea", "email", "url", "user", "select", "ipaddress"})


def value_formatter(
    result: RunResult, settings: Settings, pseudonyms: Callable[[str], str] | None
) -> tuple[Callable[[str, str, object], object], Callable[[str], str]]:
    """How plan values are shown: status names, pending creates spelled out, personal values
    pseudonymized when ``pseudonyms`` is given (``--redact``). Returns (display, redactor)."""
    from importer.plan import jsonable
    from importer.render import Note

    types = {e.name: e.object_type for e in settings.mapping.object_types}
    statuses = {s.id: s.name for s in result.schema.statuses.values()}

    def redact(text: str) -> str:
        return pseudonyms(text) if pseudonyms is not None else text

    def display(type_name: str, attr: str, value: object) -> object:
        if isinstance(value, Pending):
            return Note(f"(the new {value.ref.type} object for {redact(value.ref.source_id)})")
        try:
            kind = result.schema.type(types[type_name]).attribute(attr).kind
        except KeyError:
            kind = "text"
        if kind == "status" and isinstance(value, str):
            return statuses.get(value, value)
        if kind in _PERSONAL_KINDS and pseudonyms is not None and value is not None:
            if isinstance(value, tuple):
                return [redact(str(v)) for v in value]
            return redact(str(value))
        return jsonable(value)

    return display, redact
