"""Fixtures for the sandbox's own tests: one shared read-mostly tenant, reset after every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from importer.sandbox.app import Sandbox
from importer.sandbox.testing import GraphGet, get_token, graph_getter, http_session, sandbox_fixture

sandbox = sandbox_fixture(scope="session", users=200, devices=120, seed=7)


@pytest.fixture
def sb(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The shared sandbox; faults, tenant settings and request counts are reset after the test."""
    yield sandbox
    sandbox.reset()


@pytest.fixture(scope="session")
def http(sandbox: Sandbox) -> Iterator[requests.Session]:
    """A session that trusts the sandbox's CA."""
    with http_session(sandbox) as session:
        yield session


@pytest.fixture
def token(sb: Sandbox, http: requests.Session) -> str:
    """A fresh Graph access token (fresh, because some tests move the clock)."""
    return get_token(sb, http)


@pytest.fixture
def get(sb: Sandbox, http: requests.Session, token: str) -> GraphGet:
    """GET against the shared sandbox's Graph with a valid token."""
    return graph_getter(sb, http, token)
