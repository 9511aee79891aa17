"""Applying a plan: references to objects created in the same run, when those creates fail or race."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from importer.apply import ApplyResult, apply_plan
from importer.errors import ApiError
from importer.mapping import Ref
from importer.plan import Current, Pending, Plan, TypeInput, build_plan

KEY = "Entra Object ID"


class FakeAssets:
    """A Writer over a dict of objects; creates of the keys in ``reject`` answer 400."""

    def __init__(self, *, reject: frozenset[str] = frozenset()) -> None:
        self.objects: dict[str, dict[str, object]] = {}
        self.writes: list[tuple[str, str, dict[str, object]]] = []  # (verb, object id or key, values)
        self.reject = reject
        self._lock = threading.Lock()

    def create(self, type_name: str, values: Mapping[str, object]) -> str:
        key = str(values[KEY])
        if key in self.reject:
            raise ApiError(service="assets", method="POST", route="/object/create", status=400)
        with self._lock:
            object_id = str(100 + len(self.objects))
            self.objects[object_id] = dict(values)
            self.writes.append(("create", key, dict(values)))
        return object_id

    def update(self, type_name: str, object_id: str, values: Mapping[str, object]) -> None:
        with self._lock:
            self.objects[object_id].update(values)
            self.writes.append(("update", object_id, dict(values)))

    def delete(self, type_name: str, object_id: str) -> None:
        with self._lock:
            del self.objects[object_id]

    def by_key(self) -> dict[str, dict[str, object]]:
        return {str(v[KEY]): v for v in self.objects.values()}


def _users(
    desired: Mapping[str, Mapping[str, object]], current: Mapping[str, Current] | None = None
) -> TypeInput:
    return TypeInput(name="users", object_type="Entra User", desired=desired, current=current or {})


def _devices(
    desired: Mapping[str, Mapping[str, object]], current: Mapping[str, Current] | None = None
) -> TypeInput:
    return TypeInput(name="devices", object_type="Entra Device", desired=desired, current=current or {})


def _plan(*inputs: TypeInput) -> Plan:
    deps = {"devices": ["users"], "users": ["users"]}
    return build_plan(list(inputs), mode="incremental", dependencies=deps)


def _user(sid: str, **values: object) -> dict[str, object]:
    return {KEY: sid, "Name": sid.upper(), **values}


def _owner(sid: str) -> Pending:
    return Pending(Ref("users", sid))


def _done(result: ApplyResult, type_: str, action: str) -> int:
    return result.counts[(type_, action)]


def test_a_device_whose_new_owner_could_not_be_created_is_not_created_without_its_owner() -> None:
    plan = _plan(
        _users({"u1": _user("u1"), "u2": _user("u2")}),
        _devices({"d1": {KEY: "d1", "Owner": _owner("u1")}, "d2": {KEY: "d2", "Owner": _owner("u2")}}),
    )
    assets = FakeAssets(reject=frozenset({"u1"}))
    result = apply_plan(plan, assets, max_concurrency=4)
    assert set(assets.by_key()) == {"u2", "d2"}  # d1 is not there without its owner
    assert assets.by_key()["d2"]["Owner"] == result.created[("users", "u2")]
    assert result.failed_ids == {("users", "u1"), ("devices", "d1")}
    (device_failure,) = [f for f in result.failures if f.type == "devices"]
    assert device_failure.action == "create"
    assert "the referenced Entra User object could not be created in this run" in device_failure.error
    assert ("devices", "d1") not in result.succeeded
    assert (_done(result, "devices", "create"), _done(result, "users", "create")) == (1, 1)


def test_an_update_to_a_new_owner_that_could_not_be_created_keeps_the_current_owner() -> None:
    assets = FakeAssets(reject=frozenset({"u9"}))
    device_id = assets.create("devices", {KEY: "d1", "Owner": "55"})
    assets.writes.clear()
    plan = _plan(
        _users({"u9": _user("u9")}),
        _devices(
            {"d1": {KEY: "d1", "Owner": _owner("u9")}},
            {"d1": Current(object_id=device_id, values={KEY: "d1", "Owner": "55"})},
        ),
    )
    result = apply_plan(plan, assets)
    assert assets.objects[device_id]["Owner"] == "55"  # not cleared
    assert not [w for w in assets.writes if w[0] == "update"]
    assert result.failed_ids == {("users", "u9"), ("devices", "d1")}
    (failure,) = [f for f in result.failures if f.type == "devices"]
    assert (failure.action, failure.object_id) == ("update", device_id)
    assert "could not be created in this run" in failure.error
    assert _done(result, "devices", "update") == 0


def test_references_within_one_type_created_in_the_same_phase_are_written_right_after_it() -> None:
    # "a" sorts first and, with one worker, is created before its manager "b" exists.
    plan = _plan(
        _users({"a": _user("a", Manager=_owner("b")), "b": _user("b", Manager=_owner("c")), "c": _user("c")})
    )
    phases: list[str] = []

    class Progress:
        def start(self, phase: str, total: int) -> None:
            phases.append(phase)

        def advance(self, done: int = 1) -> None:
            pass

    assets = FakeAssets()
    result = apply_plan(plan, assets, max_concurrency=1, progress=Progress())
    users = assets.by_key()
    assert users["a"]["Manager"] == result.created[("users", "b")]
    assert users["b"]["Manager"] == result.created[("users", "c")]
    assert not result.failures
    assert _done(result, "users", "create") == 3
    assert result.succeeded == {("users", "a"), ("users", "b"), ("users", "c")}
    assert phases == ["create Entra User", "update Entra User (references)"]
    first = next(w for w in assets.writes if w[:2] == ("create", "a"))
    assert "Manager" not in first[2]  # created without it, then written by the follow-up


def test_a_reference_within_one_type_to_a_failed_create_fails_the_referring_object() -> None:
    plan = _plan(_users({"a": _user("a", Manager=_owner("b")), "b": _user("b")}))
    assets = FakeAssets(reject=frozenset({"b"}))
    result = apply_plan(plan, assets, max_concurrency=1)
    assert set(assets.by_key()) == {"a"}
    assert "Manager" not in assets.by_key()["a"]
    assert result.failed_ids == {("users", "a"), ("users", "b")}
    (failure,) = [f for f in result.failures if f.source_id == "a"]
    assert failure.object_id == result.created[("users", "a")]  # it exists, so the id map keeps it
    assert "created without Manager" in failure.error
    assert "could not be created in this run" in failure.error
    assert _done(result, "users", "create") == 0


def test_many_objects_referring_to_each_other_all_get_their_references_under_concurrency() -> None:
    sids = [f"u{n:03d}" for n in range(60)]
    desired = {sid: _user(sid, Manager=_owner(sids[(i + 7) % len(sids)])) for i, sid in enumerate(sids)}
    assets = FakeAssets()
    result = apply_plan(_plan(_users(desired)), assets, max_concurrency=8)
    users = assets.by_key()
    for i, sid in enumerate(sids):
        assert users[sid]["Manager"] == result.created[("users", sids[(i + 7) % len(sids)])]
    assert not result.failures
    assert _done(result, "users", "create") == 60
