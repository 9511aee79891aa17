"""Fixtures for the privacy tests: a keyed anonymizer, captured log lines, canary people."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from importer import anonymize
from importer.logs import configure_logging
from importer.privacy import Pseudonymizer

PEPPER = b"privacy-tests-pepper-0123456789abcdef"


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Pseudonymizer:
    """The anonymizer keyed with a known pepper; registered secrets isolated to the test."""
    pseudonyms = Pseudonymizer(PEPPER)
    monkeypatch.setattr(anonymize, "_pseudonymizer", pseudonyms)
    monkeypatch.setattr(anonymize, "_secrets", set())
    monkeypatch.setattr(anonymize, "_ordered", ())
    return pseudonyms


@dataclass
class Captured:
    """What the configured logging wrote to its stream."""

    stream: io.StringIO

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]

    def last(self) -> dict[str, Any]:
        return self.lines()[-1]


@pytest.fixture
def captured(keyed: Pseudonymizer) -> Iterator[Captured]:
    """Logging configured as the CLI does (JSON on a stream, debug), read back as parsed lines."""
    stream = io.StringIO()
    configure_logging(level="debug", stream=stream, console=False)
    yield Captured(stream)
    configure_logging(level="warning")


@pytest.fixture
def console(keyed: Pseudonymizer) -> Iterator[Callable[[], str]]:
    """Logging configured with the console renderer (what a terminal shows)."""
    stream = io.StringIO()
    configure_logging(level="debug", stream=stream, console=True)
    yield stream.getvalue
    configure_logging(level="warning")


def files_under(root: Path, *suffixes: str) -> list[Path]:
    """Every file below ``root`` whose name ends with one of ``suffixes`` (all files if none)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and (not suffixes or p.name.endswith(suffixes)))


# -- canary people ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Canary:
    """A person whose every personal value carries a token that must never reach a log."""

    token: str  # ASCII, with a digit outside base32, so no pseudonym can contain it by chance
    upn: str
    mail: str
    display_name: str
    given_name: str
    surname: str
    employee_id: str
    user_type: str = "Member"
    device_name: str | None = None
    rejected: bool = False  # Assets rejects this person's mail (one failing object)
    graph_id: str = ""

    def values(self) -> list[str]:
        """Every personal value, as written and as JSON would escape it."""
        raw = [self.upn, self.mail, self.display_name, self.given_name, self.surname, self.employee_id]
        raw += [self.device_name] if self.device_name else []
        forms = {self.token, *raw, *(v.lower() for v in raw)}
        forms |= {json.dumps(v)[1:-1] for v in list(forms)}  # "Zo\u00eb" in ASCII JSON
        return sorted(forms, key=len, reverse=True)


CANARIES = (
    Canary(
        token="qxk1",
        upn="zoe.o'brien.qxk1@contoso.com",
        mail="Zoë.O'Brïen.qxk1@exämple.example",
        display_name='Zoë "Kanarie" O\'Brïen qxk1 <b>',
        given_name="Zoë\u202eqxk1",
        surname="O'Brïen\"<qxk1>",
        employee_id="EMP-qxk1",
        device_name="Zoë's iPhone qxk1",
    ),
    Canary(
        token="qxk2",
        upn="ext.qxk2_fabrikam.example#EXT#@contoso.onmicrosoft.com",
        mail="ext.qxk2@fabrikam.example",
        display_name="Ünïcødé 'Gäst' qxk2 \"<script>\"",
        given_name="Ünïcødé qxk2",
        surname="Gäst-qxk2",
        employee_id="EMP-qxk2",
        user_type="Guest",
    ),
    Canary(
        token="qxk3",
        upn="layla.qxk3@contoso.com",
        mail="Layla.QXK3@contoso.com",
        display_name="ليلى \u2067qxk3\u2069 حداد",
        given_name="ليلى qxk3",
        surname="حداد qxk3",
        employee_id="EMP-qxk3",
    ),
    Canary(
        token="qxk4",
        upn="bad.qxk4@contoso.com",
        mail="bad.qxk4@nodot",
        display_name="Bad Mail qxk4",
        given_name="Bad qxk4",
        surname="Mail qxk4",
        employee_id="EMP-qxk4",
        rejected=True,
    ),
)


def add_canaries(sb: Any, canaries: tuple[Canary, ...] = CANARIES) -> list[Canary]:
    """Add the canary people to the sandbox's Entra (and a Jira account, and a device for some)."""
    from dataclasses import replace

    ids = sb.mutate(add_users=len(canaries), seed=991)["add_users"]
    devices = sb.mutate(add_devices=len(canaries), seed=992)["add_devices"]
    out = []
    with sb.directory.lock:
        for canary, oid, did in zip(canaries, ids, devices, strict=True):
            sb.directory.users.set(
                oid,
                {
                    "userPrincipalName": canary.upn,
                    "mail": canary.mail,
                    "displayName": canary.display_name,
                    "givenName": canary.given_name,
                    "surname": canary.surname,
                    "employeeId": canary.employee_id,
                    "userType": canary.user_type,
                    "accountEnabled": True,
                },
            )
            if canary.device_name:
                sb.directory.devices.set(did, {"displayName": canary.device_name})
                sb.directory.owners[did] = oid
            out.append(replace(canary, graph_id=oid))
    sb.assets.add_jira_user(canaries[0].mail, canaries[0].display_name)
    return out
