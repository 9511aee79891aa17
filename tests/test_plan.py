"""The planner: field diffs, null handling, removals, the deletion guard, hashing, rendering."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.mapping import Ref
from importer.plan import Current, Pending, Plan, TypeInput, build_plan, guard
from importer.render import render_json, render_markdown, render_text


def users(
    desired: Mapping[str, Mapping[str, object]],
    current: Mapping[str, Current],
    **kw: object,
) -> TypeInput:
    base: dict[str, object] = {
        "name": "users",
        "object_type": "Entra User",
        "desired": desired,
        "current": current,
        "mark_attribute": "Entra Status",
        "mark_value": "2",
    }
    base.update(kw)
    return TypeInput(**base)  # type: ignore[arg-type]


def test_new_records_are_created_with_every_known_value() -> None:
    plan = build_plan([users({"g1": {"Name": "Ann", "Job": None}}, {})], mode="full")
    (change,) = plan.changes
    assert change.action == "create"
    assert dict(change.diff) == {"Name": (None, "Ann")}


def test_only_changed_fields_are_updated() -> None:
    cur = {"g1": Current(object_id="11", label="Ann", values={"Name": "Ann", "Job": "Dev", "Dept": "IT"})}
    plan = build_plan([users({"g1": {"Name": "Ann", "Job": "Lead", "Dept": "IT"}}, cur)], mode="full")
    (change,) = plan.changes
    assert (change.action, change.object_id, dict(change.diff)) == ("update", "11", {"Job": ("Dev", "Lead")})
    assert plan.summary() == {"create": 0, "update": 1, "mark": 0, "delete": 0, "unchanged": 0}


def test_a_null_source_value_never_blanks_a_target_value_unless_asked() -> None:
    cur = {"g1": Current(object_id="11", values={"Name": "Ann", "Job": "Dev"})}
    want = {"g1": {"Name": "Ann", "Job": None}}
    assert not build_plan([users(want, cur)], mode="full").changes
    plan = build_plan([users(want, cur, clear_on_null=frozenset({"Job"}))], mode="full")
    assert dict(plan.changes[0].diff) == {"Job": ("Dev", None)}


def test_unchanged_objects_are_counted() -> None:
    cur = {"g1": Current(object_id="11", values={"Name": "Ann"})}
    plan = build_plan([users({"g1": {"Name": "Ann"}}, cur, unchanged=5)], mode="incremental")
    assert not plan.has_changes
    assert plan.summary()["unchanged"] == 6


def test_full_read_marks_objects_missing_from_the_source() -> None:
    cur = {
        "g1": Current(object_id="11", values={"Name": "Ann", "Entra Status": "1"}),
        "g2": Current(object_id="12", label="Gone", values={"Name": "Bo", "Entra Status": "1"}),
        "g3": Current(object_id="13", values={"Name": "Cy", "Entra Status": "2"}),  # already marked
    }
    plan = build_plan([users({"g1": {"Name": "Ann", "Entra Status": "1"}}, cur, full=True)], mode="full")
    (change,) = plan.changes
    assert (change.action, change.object_id, change.reason) == ("mark", "12", "not in Entra")
    assert dict(change.diff) == {"Entra Status": ("1", "2")}


def test_incomplete_reads_never_remove_anything() -> None:
    cur = {"g2": Current(object_id="12", values={})}
    plan = build_plan([users({}, cur, full=True, complete=False, missing="delete")], mode="full")
    assert not plan.changes
    assert not plan.is_complete
    assert "incomplete" in plan.warnings[0]


@pytest.mark.parametrize(
    ("missing", "reason", "action"),
    [
        pytest.param("delete", "deleted", "delete", id="hard-delete-deletes"),
        pytest.param("delete", "changed", "mark", id="soft-delete-only-marks"),
        pytest.param("mark", "deleted", "mark", id="mark-policy"),
        pytest.param("ignore", "deleted", None, id="ignore-policy"),
    ],
)
def test_removal_policy(missing: str, reason: str, action: str | None) -> None:
    cur = {"g2": Current(object_id="12", values={"Entra Status": "1"})}
    plan = build_plan([users({}, cur, removed={"g2": reason}, missing=missing)], mode="incremental")
    assert [c.action for c in plan.changes] == ([action] if action else [])


def test_creates_of_referenced_types_come_first_and_pending_references_are_updates() -> None:
    devices = TypeInput(
        name="devices",
        object_type="Entra Device",
        desired={"d1": {"Owner": Pending(Ref("users", "g9"))}},
        current={"d1": Current(object_id="50", values={"Owner": "11"})},
    )
    plan = build_plan(
        [devices, users({"g9": {"Name": "New"}}, {})], mode="full", dependencies={"devices": ["users"]}
    )
    assert [(c.action, c.type) for c in plan.changes] == [("create", "users"), ("update", "devices")]


def test_the_plan_hash_is_deterministic_and_changes_with_the_plan() -> None:
    def make(job: str) -> Plan:
        cur = {f"g{i}": Current(object_id=str(i), values={"Job": "x"}) for i in range(5)}
        want = {f"g{i}": {"Job": job} for i in reversed(range(5))}
        return build_plan([users(want, cur)], mode="full")

    assert make("a").plan_hash == make("a").plan_hash
    assert make("a").plan_hash != make("b").plan_hash


def _removals(n: int, managed: int) -> Plan:
    cur = {f"g{i}": Current(object_id=str(i), values={"Entra Status": "1"}) for i in range(managed)}
    keep = {f"g{i}": {"Entra Status": "1"} for i in range(n, managed)}
    return build_plan([users(keep, cur, full=True)], mode="full")


def test_the_guard_refuses_too_many_removals_by_count_and_by_percent() -> None:
    by_count = guard(_removals(60, 10_000), managed={"users": 10_000}, delete_max=50, delete_max_percent=5)
    assert by_count.verdict is not None
    assert by_count.verdict.refused
    assert "60 marks/deletes exceed sync.delete_max=50" in (by_count.verdict.reason or "")
    by_pct = guard(_removals(30, 100), managed={"users": 100}, delete_max=50, delete_max_percent=5)
    assert by_pct.verdict is not None
    assert by_pct.verdict.refused
    assert "30 of 100" in (by_pct.verdict.reason or "")
    ok = guard(_removals(4, 100), managed={"users": 100}, delete_max=50, delete_max_percent=5)
    assert ok.verdict is not None
    assert not ok.verdict.refused


def test_an_approval_is_bound_to_one_exact_plan() -> None:
    plan = _removals(30, 100)
    approved = guard(
        plan, managed={"users": 100}, delete_max=50, delete_max_percent=5, approved_hash=plan.plan_hash
    )
    assert approved.verdict is not None
    assert approved.verdict.approved
    assert not approved.verdict.refused
    other = guard(
        _removals(31, 100),
        managed={"users": 100},
        delete_max=50,
        delete_max_percent=5,
        approved_hash=plan.plan_hash,
    )
    assert other.verdict is not None
    assert other.verdict.refused


def test_renderers_show_the_changes_summary_and_refusal() -> None:
    cur = {"g1": Current(object_id="11", label="Ann", values={"Job": "Dev"})}
    plan = guard(
        build_plan([users({"g1": {"Job": "Lead"}, "g2": {"Name": "Bo"}}, cur)], mode="incremental"),
        managed={"users": 2},
        delete_max=50,
        delete_max_percent=5,
    )
    text = render_text(plan, instance="contoso")
    assert "+ Entra User g2" in text
    assert '~ Entra User 11 "Ann"' in text
    assert 'Job: "Dev" → "Lead"' in text
    assert text.rstrip().endswith("Plan: 1 to create, 1 to update, 0 to mark, 0 to delete, 0 unchanged.")
    md = render_markdown(plan)
    assert "| Entra User | 1 | 1 | 0 | 0 | 0 |" in md
    doc = json.loads(render_json(plan, instance="contoso"))
    assert doc["format_version"] == 1
    assert doc["summary"] == {"create": 1, "update": 1, "mark": 0, "delete": 0, "unchanged": 0}
    assert doc["plan_hash"] == plan.plan_hash
    assert doc["changes"][1]["diff"] == {"Job": {"current": "Dev", "desired": "Lead"}}


def test_redaction_reaches_labels_and_source_ids() -> None:
    plan = build_plan([users({"g-secret": {"Name": "Ann"}}, {})], mode="full")
    redact = lambda s: "pid:x"  # noqa: E731
    fmt = lambda t, a, v: "pid:v"  # noqa: E731
    for text in (render_text(plan, redact=redact, fmt=fmt), render_json(plan, redact=redact, fmt=fmt)):
        assert "g-secret" not in text
        assert "Ann" not in text


# -- property: applying a plan and planning again gives nothing -------------------------------

_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=4))
_records = st.dictionaries(
    st.sampled_from(["g1", "g2", "g3", "g4"]),
    st.dictionaries(st.sampled_from(["A", "B", "C"]), _values, max_size=3),
    max_size=4,
)
_objects = st.dictionaries(
    st.sampled_from(["g1", "g2", "g3", "g5"]),
    st.dictionaries(st.sampled_from(["A", "B", "C", "Entra Status"]), _values, max_size=4),
    max_size=4,
)


def _apply(plan: Plan, current: dict[str, Current]) -> dict[str, Current]:
    state = dict(current)
    for c in plan.changes:
        if c.action == "delete":
            state.pop(c.source_id)
        elif c.action == "create":
            state[c.source_id] = Current(
                object_id=f"new-{c.source_id}", values={a: new for a, (_, new) in c.diff.items()}
            )
        else:
            values = dict(state[c.source_id].values)
            values.update({a: new for a, (_, new) in c.diff.items()})
            state[c.source_id] = Current(object_id=state[c.source_id].object_id, values=values)
    return state


@settings(max_examples=300)
@given(
    desired=_records,
    objects=_objects,
    missing=st.sampled_from(["ignore", "mark", "delete"]),
    clear=st.booleans(),
)
def test_plan_of_applied_plan_is_empty(
    desired: dict[str, dict[str, object]], objects: dict[str, dict[str, object]], missing: str, clear: bool
) -> None:
    current = {sid: Current(object_id=f"o-{sid}", values=v) for sid, v in objects.items()}
    clear_on_null = frozenset({"A"}) if clear else frozenset()

    def once(cur: dict[str, Current]) -> Plan:
        return build_plan(
            [users(desired, cur, full=True, missing=missing, clear_on_null=clear_on_null)], mode="full"
        )

    first = once(current)
    second = once(_apply(first, current))
    assert second.changes == ()
