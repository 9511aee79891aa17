"""Fakes for the Entra source: a stateful Entra authority and a stateful Graph, on ``responses``.

Both answer from the official sample bodies in ``samples/`` (copied from the reference notes;
provenance in ``samples/SOURCES.md``) and record every request, so tests assert on what was sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses

from importer.graph import ClientSecret, GraphAuth, GraphClient, reset_app_cache
from importer.http import Http, HttpSettings
from tests.fakes import FakeClock

SAMPLES = Path(__file__).parent / "samples"
TENANT = "00000000-0000-0000-0000-000000000001"  # the tenant of the fake-authority samples
CLIENT = "5c6e1f2a-8b3d-4e9f-a1b2-c3d4e5f60718"
SECRET = "canary~Qx7-THE-SECRET-VALUE-must-never-show"
LOGIN = "https://login.microsoftonline.com"
GRAPH = "https://graph.microsoft.com"


def sample(name: str) -> Any:
    """A sample body, parsed."""
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Reply:
    """One canned answer: a JSON body, or ``raw`` text sent as is (e.g. truncated JSON)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: str | None = None


@dataclass(frozen=True)
class Seen:
    """A request the fake received."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any


class FakeAuthority:
    """The Entra authority: OIDC configuration, token endpoint and (global host) instance discovery."""

    def __init__(self, rsps: responses.RequestsMock, *, host: str = LOGIN, tenant: str = TENANT) -> None:
        self.host = host
        self.token_posts: list[dict[str, list[str]]] = []
        self.discovery_gets = 0
        self.refusals: deque[Reply] = deque()
        self.oidc: Reply | None = None
        self.instance_status = 200
        config = json.dumps(sample("fake-authority/openid-configuration-minimal.json")).replace(LOGIN, host)
        self._config = json.loads(config.replace(TENANT, tenant))
        rsps.add_callback(
            responses.GET, f"{host}/{tenant}/v2.0/.well-known/openid-configuration", callback=self._openid
        )
        rsps.add_callback(responses.POST, f"{host}/{tenant}/oauth2/v2.0/token", callback=self._token)
        rsps.add_callback(
            responses.GET,
            re.compile(re.escape(f"{LOGIN}/common/discovery/instance") + r".*"),
            callback=self._instance,
        )

    def refuse(self, body: Any, status: int = 400) -> None:
        """Answer the next token request with an error body."""
        self.refusals.append(Reply(status=status, body=body))

    def answer(self, reply: Reply) -> None:
        """Answer the next token request with ``reply`` (any status, headers, raw text)."""
        self.refusals.append(reply)

    def _openid(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        self.discovery_gets += 1
        if self.oidc is not None:
            reply = self.oidc
            return reply.status, reply.headers, reply.raw if reply.raw is not None else json.dumps(reply.body)
        return 200, {}, json.dumps(self._config)

    def _instance(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if self.instance_status != 200:
            return self.instance_status, {}, json.dumps({"error": "invalid_instance"})
        return 200, {}, json.dumps(sample("fake-authority/instance-discovery.json"))

    def _token(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        self.token_posts.append(parse_qs(body))
        if self.refusals:
            reply = self.refusals.popleft()
            return reply.status, reply.headers, reply.raw if reply.raw is not None else json.dumps(reply.body)
        token = dict(sample("token-response-client-credentials.json"))
        token["access_token"] = f"token-{len(self.token_posts)}"
        return 200, {}, json.dumps(token)


class FakeGraph:
    """Graph: answers each exact URL with its queued replies (the last one repeats), records requests."""

    def __init__(self, rsps: responses.RequestsMock, *, base: str = GRAPH) -> None:
        self.base = base
        self.routes: dict[tuple[str, str], deque[Reply]] = {}
        self.requests: list[Seen] = []
        self.batch: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None
        self._lock = threading.Lock()
        pattern = re.compile(re.escape(base) + r"/.*")
        rsps.add_callback(responses.GET, pattern, callback=self._answer)
        rsps.add_callback(responses.POST, pattern, callback=self._answer)

    def on(self, url: str, *replies: Reply | Any, method: str = "GET") -> None:
        """Queue replies for ``url`` (a body that is not a ``Reply`` is a 200 with that body)."""
        queue = self.routes.setdefault((method, url), deque())
        queue.extend(r if isinstance(r, Reply) else Reply(body=r) for r in replies)

    def urls(self, method: str = "GET") -> list[str]:
        """The URLs requested, in order."""
        return [s.url for s in self.requests if s.method == method]

    def _answer(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body) if request.body else None
        url = str(request.url)
        with self._lock:
            self.requests.append(Seen(str(request.method), url, dict(request.headers), body))
        if request.method == "POST" and url == f"{self.base}/v1.0/$batch" and self.batch is not None:
            return 200, {}, json.dumps({"responses": self.batch(body["requests"])})  # outside the lock
        with self._lock:
            queue = self.routes.get((str(request.method), url))
            if not queue:
                return (
                    404,
                    {},
                    json.dumps({"error": {"code": "Request_ResourceNotFound", "message": "no route"}}),
                )
            reply = queue.popleft() if len(queue) > 1 else queue[0]
        return reply.status, reply.headers, reply.raw if reply.raw is not None else json.dumps(reply.body)


@pytest.fixture(autouse=True)
def _fresh_msal_apps() -> Iterator[None]:
    """MSAL apps are cached per process; each test starts without one (MSAL also caches 400s)."""
    reset_app_cache()
    yield
    reset_app_cache()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def http(clock: FakeClock) -> Http:
    return Http("graph", HttpSettings(max_retries=3, retry_budget=500), clock=clock)


@pytest.fixture
def authority(rsps: responses.RequestsMock) -> FakeAuthority:
    return FakeAuthority(rsps)


@pytest.fixture
def graph(rsps: responses.RequestsMock) -> FakeGraph:
    return FakeGraph(rsps)


@pytest.fixture
def auth(http: Http, authority: FakeAuthority) -> GraphAuth:
    return GraphAuth(tenant_id=TENANT, client_id=CLIENT, credential=ClientSecret(SECRET), http=http)


@pytest.fixture
def client(http: Http, auth: GraphAuth, graph: FakeGraph) -> GraphClient:
    return GraphClient(http, auth)
