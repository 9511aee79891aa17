"""What the mapping needs from the Assets schema, and the reports of plan and apply (pure values).

The mapping builds one ``TypeRequirement`` per managed object type; ``importer.assets.schema``
resolves, plans and applies them. Names here are type and attribute names, never personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from importer.assets.models import AttributeKind

__all__ = ["AttributeRequirement", "SchemaApplyResult", "SchemaPlan", "TypeRequirement"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributeRequirement:
    """One attribute a managed type needs; ``reference_type`` is the referenced type's *name*."""

    name: str
    kind: AttributeKind
    reference_type: str | None = None
    options: tuple[str, ...] = ()
    unique: bool = False
    required: bool = False
    label: bool = False
    multi: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeRequirement:
    """A managed object type: key attribute (unique, holds the Graph id), label, attributes, statuses."""

    name: str
    description: str = ""
    icon: str | None = None
    key_attribute: str
    label_attribute: str = "Name"
    attributes: tuple[AttributeRequirement, ...] = ()
    statuses: tuple[str, ...] = ()

    def effective_attributes(self) -> tuple[AttributeRequirement, ...]:
        """The attributes with the key (unique, required text) and label implied when not listed."""
        out: list[AttributeRequirement] = []
        names = {a.name.casefold() for a in self.attributes}
        if self.key_attribute.casefold() not in names:
            out.append(AttributeRequirement(name=self.key_attribute, kind="text"))
        if (
            self.label_attribute.casefold() not in names
            and self.label_attribute.casefold() != self.key_attribute.casefold()
        ):
            out.append(AttributeRequirement(name=self.label_attribute, kind="text"))
        out.extend(self.attributes)
        key, label = self.key_attribute.casefold(), self.label_attribute.casefold()
        fixed = [
            replace(
                req,
                unique=req.unique or req.name.casefold() == key,
                required=req.required or req.name.casefold() == key,
                label=req.label or req.name.casefold() == label,
            )
            for req in out
        ]
        # the key first, then the label, then the rest in the mapping's order (sorted() is stable)
        return tuple(sorted(fixed, key=lambda r: 0 if r.name.casefold() == key else 1 if r.label else 2))


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemaPlan:
    """What ``apply_schema`` would create, and the conflicts it would leave for an administrator."""

    schema_key: str
    missing_types: tuple[TypeRequirement, ...] = ()
    missing_attributes: tuple[tuple[str, AttributeRequirement], ...] = ()  # (type name, attribute)
    missing_statuses: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when the schema already has everything and nothing conflicts."""
        return not (self.missing_types or self.missing_attributes or self.missing_statuses or self.conflicts)

    def problems(self) -> list[str]:
        """Every difference, one line each (what ``SchemaDriftError`` lists)."""
        lines = [f"object type {t.name!r} is missing" for t in self.missing_types]
        lines += [
            f"object type {t!r}: attribute {a.name!r} ({a.kind}) is missing"
            for t, a in self.missing_attributes
        ]
        lines += [f"status {s!r} is missing" for s in self.missing_statuses]
        return lines + list(self.conflicts)

    def render(self) -> str:
        """The plan as text for ``importer schema plan``."""
        attrs = len(self.missing_attributes) + sum(len(t.effective_attributes()) for t in self.missing_types)
        head = (
            f"Schema {self.schema_key}: {len(self.missing_types)} object type(s), {attrs} attribute(s) and "
            f"{len(self.missing_statuses)} status(es) to create; {len(self.conflicts)} conflict(s)."
        )
        lines = [head]
        for treq in self.missing_types:
            lines.append(f"  + object type {treq.name!r}" + (f" (icon {treq.icon})" if treq.icon else ""))
            lines += [f"      + attribute {_describe(a)}" for a in treq.effective_attributes()]
        for type_name, areq in self.missing_attributes:
            lines.append(f"  + object type {type_name!r}: attribute {_describe(areq)}")
        lines += [f"  + status {name!r}" for name in self.missing_statuses]
        lines += [f"  ! {c}" for c in self.conflicts]
        if self.is_empty:
            lines.append("  Nothing to do: the schema has everything the mapping needs.")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemaApplyResult:
    """What ``apply_schema`` created and the conflicts it left alone."""

    created_types: tuple[str, ...] = ()
    created_attributes: tuple[str, ...] = ()  # "Type.Attribute"
    created_statuses: tuple[str, ...] = ()
    renamed_attributes: tuple[str, ...] = ()  # "Type.Old -> New": a new type's own label attribute
    conflicts: tuple[str, ...] = ()

    @property
    def created(self) -> int:
        """How many things were created."""
        return len(self.created_types) + len(self.created_attributes) + len(self.created_statuses)

    def render(self) -> str:
        """What apply did, as text for ``importer schema apply``."""
        lines = [
            f"Created {len(self.created_types)} object type(s), {len(self.created_attributes)} attribute(s) "
            f"and {len(self.created_statuses)} status(es); {len(self.conflicts)} conflict(s) left alone."
        ]
        lines += [f"  + object type {name!r}" for name in self.created_types]
        lines += [f"  + attribute {name}" for name in self.created_attributes]
        lines += [
            f"  ~ attribute {name} (the new type's own label attribute)" for name in self.renamed_attributes
        ]
        lines += [f"  + status {name!r}" for name in self.created_statuses]
        lines += [f"  ! {c}" for c in self.conflicts]
        return "\n".join(lines)


def _describe(req: AttributeRequirement) -> str:
    flags = [
        f
        for f, on in (
            ("unique", req.unique),
            ("required", req.required),
            ("label", req.label),
            ("multi", req.multi),
        )
        if on
    ]
    target = f" -> {req.reference_type!r}" if req.reference_type else ""
    return f"{req.name!r} {req.kind}{target}" + (f" ({', '.join(flags)})" if flags else "")
