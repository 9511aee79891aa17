"""End-to-end fixtures: a running sandbox, a config written for it, and the CLI run in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from importer.cli import main
from importer.sandbox.app import Sandbox
from importer.sandbox.configfile import write_config


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Env:
    """A sandbox plus an importer config for it."""

    sb: Sandbox
    config: Path

    def run(self, *args: str) -> Result:
        """Run the importer CLI in-process."""
        result = CliRunner().invoke(main, ["--config", str(self.config), *args], catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """Run the importer CLI in a child process (for kill -9 tests)."""
        return subprocess.Popen(
            [sys.executable, "-m", "importer", "--config", str(self.config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def objects(self, type_name: str) -> list[dict[str, Any]]:
        """Every object of a type in the sandbox's Assets, with values by attribute name."""
        return self.sb.assets.dump_objects(type_name)

    def by_key(self, type_name: str) -> dict[str, dict[str, Any]]:
        """Objects of a type keyed by their Entra Object ID."""
        return {self.value(o, "Entra Object ID"): o for o in self.objects(type_name)}

    @staticmethod
    def value(obj: Mapping[str, Any], attr: str) -> Any:
        values = obj.get("attributes", obj.get("values", {}))
        found = values.get(attr)
        if isinstance(found, list):
            return found[0] if len(found) == 1 else (found or None)
        return found

    def requests(self) -> int:
        """Requests the importer made since the last reset (control routes are not counted)."""
        return sum(r["count"] for r in self.sb.stats()["requests"])

    def edit_mapping(self, change: Any) -> None:
        """Change the config's mapping in place (``change`` gets the parsed document)."""
        doc = yaml.safe_load(self.config.read_text())
        change(doc)
        self.config.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def make_env(
    tmp_path: Path, *, users: int = 40, devices: int = 60, seed: int = 11, **overrides: Any
) -> Iterator[Env]:
    with Sandbox(users=users, devices=devices, seed=seed) as sb:
        config = write_config(sb.info(), tmp_path / "importer.yaml", overrides=overrides)
        env = Env(sb=sb, config=config)
        applied = env.run("schema", "apply")
        assert applied.code == 0, applied.err
        sb.reset_stats()
        yield env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """A fresh sandbox (40 users, 60 devices) with the schema applied and nothing synced yet."""
    yield from make_env(tmp_path)
