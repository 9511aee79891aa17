"""A state store belongs to one Assets site and one Entra tenant: another is refused, not overwritten."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from importer.cli import main
from importer.sandbox.app import Sandbox
from importer.sandbox.configfile import write_config
from importer.state import Installation, SqliteStateStore
from tests.e2e.conftest import Env

OTHER_SITE = "https://other-site.atlassian.net"


def installation(env: Env) -> Installation | None:
    store = SqliteStateStore(env.config.with_suffix(".db"), instance="sandbox")
    try:
        return store.get_installation()
    finally:
        store.close()


def test_a_state_store_of_another_site_is_refused_and_left_alone(env: Env) -> None:
    assert env.run("sync").code == 0
    before = installation(env)
    assert before is not None
    site = before.site_url
    env.edit_mapping(lambda doc: doc["assets"].update(site_url=OTHER_SITE, workspace_id=None))
    env.sb.reset_stats()
    for args in (("plan",), ("sync",)):
        result = env.run(*args)
        assert result.code == 4, result.err
        assert "assets.site_url: this state store belongs to the Assets site" in result.err
        assert site in result.err
        assert OTHER_SITE in result.err
        assert "new state store" in result.err
        assert "`instance`" in result.err
    assert installation(env) == before
    assert env.requests() == 0  # refused before any request


def test_data_center_checks_the_installation_too(env: Env) -> None:
    assert env.run("sync").code == 0
    before = installation(env)
    env.edit_mapping(
        lambda doc: doc["assets"].update(
            flavor="datacenter", site_url="https://jira.contoso.example", workspace_id=None
        )
    )
    result = env.run("plan")
    assert result.code == 4, result.err
    assert "https://jira.contoso.example" in result.err
    assert installation(env) == before


def test_a_replaced_log_pepper_is_named_as_a_cause_of_the_tenant_mismatch(env: Env) -> None:
    assert env.run("sync").code == 0
    forced = CliRunner().invoke(
        main,
        ["--config", str(env.config), "secrets", "set", "log_pepper", "--stdin", "--force"],
        input="bmV3LXBlcHBlci0zMi1ieXRlcy1sb25nLXh4eHh4eHg=\n",
    )
    assert forced.exit_code == 0, forced.output
    result = env.run("plan")
    assert result.code == 4
    text = " ".join(result.err.split())
    assert "belongs to another Entra tenant" in text
    assert "log_pepper was changed" in text
    assert "restore the previous one" in text


def test_a_new_sandbox_config_on_the_same_path_starts_with_a_fresh_state(tmp_path: Path) -> None:
    """``sandbox serve --write-config`` twice on one path: the second sandbox is usable as is."""
    with Sandbox(users=5, devices=5, seed=3) as first:
        config = write_config(first.info(), tmp_path / "sb.yaml")
        assert Env(sb=first, config=config).run("schema", "apply").code == 0
        assert Env(sb=first, config=config).run("sync").code == 0
    with Sandbox(users=5, devices=5, seed=4) as second:
        config = write_config(second.info(), tmp_path / "sb.yaml")
        env = Env(sb=second, config=config)
        assert env.run("schema", "apply").code == 0
        result = env.run("sync")
        assert result.code == 0, result.err
