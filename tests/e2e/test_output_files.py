"""Files the importer writes on request (``plan --out``, ``privacy export --out``) are private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.e2e.conftest import Env


def someone(env: Env) -> str:
    users = env.sb.directory.dump("users")["value"]
    return str(next(u["userPrincipalName"] for u in users if u.get("userPrincipalName")))


def command(env: Env, kind: str, out: Path) -> tuple[str, ...]:
    if kind == "plan":
        return ("plan", "--format", "json", "--out", str(out))
    return ("privacy", "export", someone(env), "--out", str(out))


KINDS = [pytest.param("plan", id="plan"), pytest.param("export", id="privacy-export")]


@pytest.mark.parametrize("kind", KINDS)
def test_an_existing_readable_file_becomes_0600(env: Env, tmp_path: Path, kind: str) -> None:
    out = tmp_path / "result.json"
    out.write_text("old\n")
    out.chmod(0o644)
    result = env.run(*command(env, kind, out))
    assert result.code == 0, result.err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text().startswith("{")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


@pytest.mark.parametrize("kind", KINDS)
def test_a_symlink_is_replaced_not_followed(env: Env, tmp_path: Path, kind: str) -> None:
    victim = tmp_path / "elsewhere.txt"
    victim.write_text("keep me\n")
    victim.chmod(0o644)
    out = tmp_path / "result.json"
    out.symlink_to(victim)
    result = env.run(*command(env, kind, out))
    assert result.code == 0, result.err
    assert victim.read_text() == "keep me\n"
    assert not out.is_symlink()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text().startswith("{")


def test_an_unwritable_place_is_one_clear_error(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "no-such-directory" / "plan.json"
    result = env.run("plan", "--out", str(out))
    assert result.code == 1
    assert f"cannot write {out}" in result.err
    assert "Traceback" not in result.err
