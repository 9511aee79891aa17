"""Fixtures for the Assets target tests: a fake clock, an Http that never sleeps, spec fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from importer.assets.client import AssetsClient, BasicAuth
from importer.assets.models import AssetsAttribute, AssetsObjectType, AttributeKind, ResolvedType
from importer.http import Http, HttpSettings
from tests.fakes import FakeClock

FIXTURES = Path(__file__).resolve().parents[1] / "reference" / "assets-spec" / "fixtures"
SPEC = (
    Path(__file__).resolve().parents[1]
    / "reference"
    / "assets-spec"
    / "assets-cloud-openapi.v3.1.135.77.json"
)
WORKSPACE = "f1668d0c-828c-470c-b7d1-8c4f48cd345a"
API = "https://api.atlassian.test"
SITE = "https://contoso.atlassian.test"
BASE = f"{API}/jsm/assets/workspace/{WORKSPACE}/v1"


def fixture(name: str) -> Any:
    """A JSON fixture extracted from the official OpenAPI document."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class FakeSecret:
    """Stands in for the vault's Secret: hides its value, reveals it on demand."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"


def make_http(**kw: Any) -> Http:
    """An Http on a fake clock (retries do not sleep for real)."""
    settings = HttpSettings(**{"max_retries": 3, **kw})
    return Http("assets", settings, clock=FakeClock())


@pytest.fixture
def http() -> Http:
    return make_http()


@pytest.fixture
def client(http: Http) -> AssetsClient:
    return AssetsClient.cloud(
        http, workspace_id=WORKSPACE, api_url=API, auth=BasicAuth("bot@contoso.test", FakeSecret("tok3n"))
    )


def attr(
    name: str,
    kind: AttributeKind,
    *,
    id: str = "1",
    multi: bool = False,
    options: tuple[str, ...] = (),
    **kw: Any,
) -> AssetsAttribute:
    """An attribute definition for value tests."""
    return AssetsAttribute(
        id=id, name=name, kind=kind, max_cardinality=-1 if multi else 1, options=options, **kw
    )


def make_type(
    type_id: str = "23", name: str = "Entra User", extra: tuple[AssetsAttribute, ...] = ()
) -> ResolvedType:
    """A resolved type with a key attribute (id 135), a label (136), system Key (134) and extras."""
    key = AssetsAttribute(id="135", name="Entra Object ID", kind="text", unique=True, min_cardinality=1)
    label = AssetsAttribute(id="136", name="Name", kind="text", label=True)
    system = AssetsAttribute(id="134", name="Key", kind="text", system=True, editable=False)
    attrs = {a.name: a for a in (system, key, label, *extra)}
    return ResolvedType(
        type=AssetsObjectType(id=type_id, name=name, schema_id="6"),
        attributes=attrs,
        key_attribute=key,
        label_attribute=label,
    )
