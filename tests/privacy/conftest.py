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
