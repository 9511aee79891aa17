"""Resilience fixtures: a faulty environment, its clean twin, and the checks every test ends with.

Each test drives a *faulty* environment (a sandbox plus an importer config for it) through faults,
crashes or bad input and a recovery, and a *reference* environment started from the same seed
through the same tenant changes with clean syncs only. ``Twin.check`` then asserts the three
things every resilience test promises:

1. the faulty Assets equal the reference's, attribute by attribute, objects matched by key
   (references compared by the referenced object's key, statuses by name: object and status ids
   differ between two sandboxes);
2. no key is held by two objects (the faulty sandbox runs with ``enforce_unique=False``, so only
   the importer's own care prevents a duplicate);
3. the state lets the next run converge: ``importer plan --detailed-exitcode`` exits 0.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from importer.sandbox.app import Sandbox
from importer.sandbox.base import SandboxRequest, SandboxResponse
from tests.e2e.conftest import Env, make_env

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is marked ``resilience``; those not in the quick subset are ``slow`` too, so
    ``pytest -m "not slow"`` (the pre-commit run) skips the full suite's minutes."""
    for item in items:
        if _HERE in item.path.parents and item.get_closest_marker("quick") is None:
            item.add_marker(pytest.mark.slow)


KEY = "Entra Object ID"
TYPES = ("Entra User", "Entra Device")
Snapshot = dict[str, dict[str, dict[str, Any]]]  # type -> key -> attribute -> value


def snapshot(sb: Sandbox, *, exclude_ids: frozenset[str] = frozenset()) -> Snapshot:
    """The managed objects by type and key, values comparable across sandboxes.

    References become ``("ref", key of the referenced object)``, statuses ``("status", name)``;
    system attributes (Key, Created, Updated) are left out. Raises when two objects hold one key
    (use ``exclude_ids`` for an object a test made on purpose).
    """
    store = sb.assets.store
    out: Snapshot = {}
    with store.lock:
        schema_id = int(sb.assets.schema_id)
        for type_name in TYPES:
            type_rec = store.find_type(type_name, schema_id)
            objects: dict[str, dict[str, Any]] = {}
            if type_rec is None:
                out[type_name] = objects
                continue
            attrs = [a for a in store.attrs_of(type_rec.id) if not a.system]
            for object_id in store.type_object_ids(type_rec.id):
                if str(object_id) in exclude_ids:
                    continue
                obj = store.objects[object_id]
                values: dict[str, Any] = {}
                for attr in attrs:
                    stored = obj.values.get(attr.id)
                    if not stored:
                        continue
                    values[attr.name] = _comparable(store, attr, list(stored))
                key = values.get(KEY)
                assert isinstance(key, str), f"{type_name} object {object_id} has no {KEY}"
                assert key not in objects, f"{type_name}: two objects hold the key {key}"
                objects[key] = values
            out[type_name] = objects
    return out


def _comparable(store: Any, attr: Any, stored: list[str]) -> Any:
    values: list[Any]
    if attr.kind == 1:  # reference: the referenced object's key
        values = []
        for ref in stored:
            target = store.objects.get(int(ref))
            key_attr = store.attr_by_name(target.type_id, KEY) if target is not None else None
            held = target.values.get(key_attr.id) if target is not None and key_attr is not None else None
            values.append(("ref", held[0] if held else f"object {ref}"))
    elif attr.kind == 7:  # status: its name
        values = [("status", store.statuses[int(s)].name) for s in stored]
    else:
        values = list(stored)
    return values[0] if len(values) == 1 else tuple(sorted(values, key=str))


def diff(actual: Snapshot, expected: Snapshot, *, limit: int = 12) -> list[str]:
    """Readable differences between two snapshots (empty when equal)."""
    lines: list[str] = []
    for type_name in TYPES:
        got, want = actual.get(type_name, {}), expected.get(type_name, {})
        lines += [f"{type_name} {k}: missing" for k in sorted(want.keys() - got.keys())]
        lines += [f"{type_name} {k}: unexpected" for k in sorted(got.keys() - want.keys())]
        for key in sorted(want.keys() & got.keys()):
            for attr in sorted(want[key].keys() | got[key].keys()):
                if want[key].get(attr) != got[key].get(attr):
                    have, should = got[key].get(attr), want[key].get(attr)
                    lines.append(f"{type_name} {key} {attr}: {have!r} != expected {should!r}")
    return lines[:limit] + ([f"... {len(lines) - limit} more"] if len(lines) > limit else [])


def duplicate_keys(sb: Sandbox) -> dict[str, int]:
    """Keys held by more than one object, per type (the sandbox's own count)."""
    counts: dict[str, int] = sb.stats()["duplicate_keys"]
    return counts


def clean_sync(env: Env, *args: str) -> None:
    """A sync that must succeed; a plan the deletion guard refuses is approved (the reference's job
    is the end state a careful admin reaches)."""
    result = env.run("sync", *args)
    if result.code == 3:
        plan = env.run("plan", *args, "--format", "json").json()
        result = env.run("sync", *args, "--approve", plan["plan_hash"])
    assert result.code == 0, f"reference sync failed ({result.code}): {result.out}\n{result.err}"


@dataclass
class Twin:
    """The faulty environment and its clean reference, kept on the same tenant."""

    env: Env
    ref: Env
    synced: bool = False

    @property
    def sb(self) -> Sandbox:
        return self.env.sb

    def both(self, change: Callable[[Sandbox], Any]) -> Any:
        """Make the same tenant change on both sandboxes; returns the faulty side's answer."""
        answer = change(self.env.sb)
        other = change(self.ref.sb)
        assert other == answer, "the twins diverged: the same change touched different objects"
        return answer

    def mutate(self, **counts: int) -> dict[str, list[str]]:
        """``sb.mutate`` on both sandboxes (deterministic, so the same ids are touched)."""
        touched: dict[str, list[str]] = self.both(lambda sb: sb.mutate(**counts))
        return touched

    def set_fields(self, kind: str, values: dict[str, dict[str, Any]]) -> None:
        """Set Graph properties of users or devices by id, on both sandboxes (logged as changes)."""

        def change(sb: Sandbox) -> None:
            assert sb.directory is not None
            with sb.directory.lock:
                coll = sb.directory.collection(kind)
                for oid, props in values.items():
                    coll.set(oid, props)

        self.both(change)

    def expected(self, *args: str) -> Snapshot:
        """The reference's Assets after a clean sync of its current tenant."""
        clean_sync(self.ref, *args)
        return snapshot(self.ref.sb)

    def check(
        self, *, exclude_ids: frozenset[str] = frozenset(), expected: Snapshot | None = None
    ) -> Snapshot:
        """Assert the faulty side converged: same objects as a clean run, no duplicates, empty next plan."""
        want = expected if expected is not None else self.expected()
        got = snapshot(self.env.sb, exclude_ids=exclude_ids)
        problems = diff(got, want)
        assert not problems, "the faulty run did not converge to the clean run:\n" + "\n".join(problems)
        dupes = duplicate_keys(self.env.sb)
        assert sum(dupes.values()) <= len(exclude_ids), f"duplicate keys: {dupes}"  # only hand-made ones
        plan = self.env.run("plan", "--detailed-exitcode")
        assert plan.code == 0, f"the next plan is not empty ({plan.code}):\n{plan.out}\n{plan.err}"
        return got


def make_twin(
    tmp_path: Path, *, users: int, devices: int, seed: int = 11, **overrides: Any
) -> Iterator[Twin]:
    """A faulty environment (unique keys not enforced) and a clean twin of the same tenant."""
    for ref in make_env(tmp_path / "reference", users=users, devices=devices, seed=seed, **overrides):
        for env in make_env(tmp_path / "faulty", users=users, devices=devices, seed=seed, **overrides):
            env.sb.assets.configure(enforce_unique=False)
            yield Twin(env=env, ref=ref)


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Twin]:
    """A small tenant (40 users, 60 devices) twice: faulty and reference; nothing synced yet."""
    yield from make_twin(tmp_path, users=40, devices=60)


@pytest.fixture
def synced(twin: Twin) -> Twin:
    """The small twin after a first clean sync on both sides."""
    clean_sync(twin.env)
    clean_sync(twin.ref)
    twin.env.sb.reset_stats()
    return twin


# -- intercepting the sandbox ----------------------------------------------------------------------

Handler = Callable[[SandboxRequest], SandboxResponse | None]


@dataclass
class Interceptor:
    """Wraps one sandbox service: ``hook(request, original)`` answers, or calls ``original``.

    Counts requests by ``"METHOD path"`` so hooks can act on the n-th page or write.
    """

    sb: Sandbox
    service: str
    hook: Callable[[SandboxRequest, Handler], SandboxResponse | None]
    seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Interceptor:
        assert self.sb.server is not None
        services = self.sb.server.services
        self._original = services[self.service]
        original_handle = self._original.handle

        interceptor = self

        class _Wrapped:
            name = self.service

            def handle(self, request: SandboxRequest) -> SandboxResponse | None:
                with interceptor.lock:
                    interceptor.seen.append(f"{request.method} {request.path}")
                return interceptor.hook(request, original_handle)

            def __getattr__(self, item: str) -> Any:
                return getattr(interceptor._original, item)

        services[self.service] = _Wrapped()  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.sb.server is not None
        self.sb.server.services[self.service] = self._original

    def count(self, fragment: str) -> int:
        """Requests seen whose ``"METHOD path"`` contains ``fragment``."""
        with self.lock:
            return sum(fragment in s for s in self.seen)
