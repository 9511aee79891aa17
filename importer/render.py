"""Render a Plan as text (a terminal), Markdown (CI summaries, PR comments) or JSON (tools).

Kept apart from ``plan.py`` so that the planner stays small and pure. Values are shown through
a ``ValueFormatter`` given by the caller, which knows the schema (status ids ─► names,
referenced object ids ─► object keys) and, with ``--redact``, pseudonymizes personal values;
labels and source ids go through the same ``redact`` callable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from importer.plan import ACTIONS, Change, Plan, jsonable

__all__ = ["FORMAT_VERSION", "Note", "render_json", "render_markdown", "render_text"]

FORMAT_VERSION = 1
ValueFormatter = Callable[[str, str, object], object]  # (type, attribute, value) -> JSON-able display value
Redactor = Callable[[str], str]


class Note(str):
    """A display value that is prose, not data: shown without quotes in text and Markdown."""

    __slots__ = ()


_SYMBOL = {"create": "+", "update": "~", "mark": "!", "delete": "-"}
_COLOUR = {"create": "green", "update": "yellow", "mark": "magenta", "delete": "red"}


def _plain(_type: str, _attr: str, value: object) -> object:
    return jsonable(value)


def _text(value: object) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, Note):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _ident(text: str) -> str:
    return text


def _headline(change: Change, redact: Redactor) -> str:
    who = change.object_id or redact(change.source_id)
    label = f' "{redact(change.label)}"' if change.label else ""
    reason = f"  ({change.reason})" if change.reason else ""
    return f"{change.object_type} {who}{label}{reason}"


def render_text(
    plan: Plan,
    *,
    instance: str = "",
    color: bool = False,
    fmt: ValueFormatter = _plain,
    redact: Redactor = _ident,
    limit: int | None = None,
) -> str:
    """Terraform-like lines: ``+ ~ ! -`` with field diffs, then a summary line."""
    lines = [f"Plan ({plan.mode}{' for ' + instance if instance else ''}), hash {plan.plan_hash}", ""]
    shown = plan.changes if limit is None else plan.changes[:limit]
    for change in shown:
        head = f"{_SYMBOL[change.action]} {_headline(change, redact)}"
        lines.append(click.style(head, fg=_COLOUR[change.action], bold=True) if color else head)
        for attr, (old, new) in change.diff.items():
            if change.action == "create":
                lines.append(f"    {attr}: {_text(fmt(change.type, attr, new))}")
            else:
                before, after = _text(fmt(change.type, attr, old)), _text(fmt(change.type, attr, new))
                lines.append(f"    {attr}: {before} → {after}")
    if limit is not None and len(plan.changes) > limit:
        lines.append(f"  ... and {len(plan.changes) - limit} more changes (use --format json for all)")
    if plan.changes:
        lines.append("")
    for warning in plan.warnings:
        lines.append(("Warning: " if not color else click.style("Warning: ", fg="yellow")) + warning)
    verdict = plan.verdict
    if verdict is not None and verdict.refused:
        refusal = (
            f"Refused by the deletion guard: {verdict.reason}. Review the marks and deletes above; to apply "
            f"this exact plan run `importer sync --approve {plan.plan_hash}`."
        )
        lines.append(click.style(refusal, fg="red", bold=True) if color else refusal)
    elif verdict is not None and verdict.approved:
        lines.append(f"Deletion guard: {verdict.removals} removals approved for plan {plan.plan_hash}.")
    s = plan.summary()
    if not plan.changes:
        checked = (
            f" {s['unchanged']} changed records in Entra needed nothing in Assets." if s["unchanged"] else ""
        )
        lines.append(f"No changes.{checked}")
    else:
        lines.append(
            f"Plan: {s['create']} to create, {s['update']} to update, {s['mark']} to mark, "
            f"{s['delete']} to delete, {s['unchanged']} unchanged."
        )
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(
    plan: Plan,
    *,
    instance: str = "",
    fmt: ValueFormatter = _plain,
    redact: Redactor = _ident,
    limit: int = 500,
) -> str:
    """A summary table per type and the changes in collapsible sections (GitHub/GitLab flavoured)."""
    title = f"### importer plan{' for `' + instance + '`' if instance else ''} ({plan.mode})"
    out = [title, "", f"Plan hash: `{plan.plan_hash}`", ""]
    out += ["| type | " + " | ".join(ACTIONS) + " | unchanged |", "|---" * (len(ACTIONS) + 2) + "|"]
    for name, counts in plan.by_type().items():
        cells = " | ".join(str(counts[a]) for a in (*ACTIONS, "unchanged"))
        out.append(f"| {plan.object_types.get(name, name)} | {cells} |")
    out.append("")
    verdict = plan.verdict
    if verdict is not None and verdict.refused:
        out += [
            f"> **Refused by the deletion guard:** {verdict.reason}. Approve this exact plan with "
            f"`importer sync --approve {plan.plan_hash}`.",
            "",
        ]
    for warning in plan.warnings:
        out += [f"> Warning: {warning}", ""]
    for action in ACTIONS:
        changes = [c for c in plan.changes if c.action == action]
        if not changes:
            continue
        out += [f"<details><summary>{_SYMBOL[action]} {action}: {len(changes)}</summary>", ""]
        out += ["| object | attribute | current | desired |", "|---|---|---|---|"]
        for c in changes[:limit]:
            who = _md_cell(_headline(c, redact))
            if not c.diff:
                out.append(f"| {who} | | | |")
            for attr, (old, new) in c.diff.items():
                out.append(
                    f"| {who} | {_md_cell(attr)} | {_md_cell(_text(fmt(c.type, attr, old)))} | "
                    f"{_md_cell(_text(fmt(c.type, attr, new)))} |"
                )
                who = ""
        if len(changes) > limit:
            out.append(f"| ... {len(changes) - limit} more | | | |")
        out += ["", "</details>", ""]
    if not plan.changes:
        out.append("No changes.")
    return "\n".join(out) + "\n"


def render_json(
    plan: Plan,
    *,
    instance: str = "",
    fmt: ValueFormatter = _plain,
    redact: Redactor = _ident,
) -> str:
    """The versioned JSON document described in README ("Plan JSON format")."""
    verdict = plan.verdict

    def value(type_: str, attr: str, v: object) -> object:
        return None if v is None else fmt(type_, attr, v)

    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "instance": instance,
        "mode": plan.mode,
        "plan_hash": plan.plan_hash,
        "complete": plan.is_complete,
        "summary": plan.summary(),
        "by_type": plan.by_type(),
        "guard": None
        if verdict is None
        else {
            "refused": verdict.refused,
            "approved": verdict.approved,
            "removals": verdict.removals,
            "delete_max": verdict.limit,
            "by_type": {t: {"removals": n, "limit": lim} for t, (n, lim) in verdict.by_type.items()},
            "reason": verdict.reason,
        },
        "warnings": list(plan.warnings),
        "changes": [
            {
                "action": c.action,
                "type": c.type,
                "object_type": c.object_type,
                "source_id": redact(c.source_id),
                "object_id": c.object_id,
                "label": redact(c.label) if c.label else None,
                "reason": c.reason,
                "diff": {
                    a: {"current": value(c.type, a, old), "desired": value(c.type, a, new)}
                    for a, (old, new) in c.diff.items()
                },
            }
            for c in plan.changes
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
