"""Configuration: loading, interpolation, strict validation, every problem reported at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.cli import main
from importer.config import config_json_schema, load_settings, parse_settings
from importer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.yaml"


def example() -> dict[str, object]:
    data = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(data, dict)
    return data


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(text)
    return [str(p) for p in info.value.problems]


def test_the_example_config_is_valid_and_documents_every_key() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.instance == "contoso"
    assert [e.name for e in settings.mapping.object_types] == ["users", "devices"]
    text = EXAMPLE.read_text()
    for section in type(settings).model_fields:
        if section in ("source", "mapping", "instance"):
            continue
        for key, info in type(getattr(settings, section)).model_fields.items():
            assert f"{info.alias or key}:" in text, (
                f"{section}.{key} is not documented in config.example.yaml"
            )


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    target = tmp_path / "conf" / "importer.yaml"
    target.parent.mkdir()
    target.write_text(EXAMPLE.read_text())
    settings = load_settings(target)
    assert settings.vault.path == target.parent / "secrets.vault"
    assert settings.state.path == target.parent / "state.db"
    assert settings.logging.dir == target.parent / "logs"


def test_three_mistakes_are_reported_together_with_key_paths() -> None:
    data = example()
    data["http"] = {"timeout_s": "soon"}  # type: ignore[index]
    data["assets"]["colour"] = "blue"  # type: ignore[index]
    data["mapping"]["object_types"][1]["attributes"]["Owner"] = {"reference": "userz"}  # type: ignore[index]
    found = problems_of(yaml.safe_dump(data))
    assert any(p.startswith("http.timeout_s:") for p in found)
    assert any(p.startswith("assets.colour: unknown key 'colour'") for p in found)
    assert (
        "mapping.object_types[1].attributes.Owner: unknown reference 'userz' (mapped types: devices, users)"
        in found
    )
    assert len(found) == 3


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            ("entra", "client_secret", "hunter2-plain"),
            "entra.client_secret: must be a vault reference",
            id="plain-secret",
        ),
        pytest.param(("entra", "cloud", "mars"), "entra.cloud:", id="bad-cloud"),
        pytest.param(
            ("entra", "tenant_id", "common"), "entra.tenant_id: must be your tenant", id="common-tenant"
        ),
        pytest.param(
            ("assets", "site_url", "contoso.atlassian.net"), "assets.site_url: must be an absolute", id="url"
        ),
        pytest.param(("schedule", "incremental", "every day"), "schedule.incremental:", id="cron"),
        pytest.param(
            ("schedule", "timezone", "Mars/Olympus"), "schedule.timezone: unknown time zone", id="tz"
        ),
        pytest.param(("logging", "retention_days", 90), "logging.retention_days:", id="retention-over-60"),
        pytest.param(
            ("state", "backend", "dynamodb"),
            "state.table: required with backend: dynamodb",
            id="dynamo-table",
        ),
    ],
)
def test_bad_values_name_their_key(change: tuple[str, str, object], expected: str) -> None:
    data = example()
    section, key, value = change
    data[section][key] = value  # type: ignore[index]
    found = problems_of(yaml.safe_dump(data))
    assert any(p.startswith(expected) for p in found), found


def test_a_plain_secret_never_appears_in_the_error() -> None:
    data = example()
    data["assets"]["api_token"] = "ATATT3xFfGF0-canary-token"  # type: ignore[index]
    with pytest.raises(ConfigError) as info:
        parse_settings(yaml.safe_dump(data))
    assert "canary" not in str(info.value)


@pytest.mark.parametrize(
    ("attr", "spec", "expected"),
    [
        pytest.param(
            "Mail", {"from": "mial"}, "unknown users field 'mial' (did you mean 'mail'?)", id="field"
        ),
        pytest.param(
            "Enabled",
            {"from": "accountEnabled", "transform": ["lower"]},
            "lower works on text",
            id="transform",
        ),
        pytest.param(
            "Seen", {"from": "displayName", "transform": ["date"]}, "date works on date-times", id="date"
        ),
        pytest.param("Flag", {"from": "jobTitle", "type": "boolean"}, "type boolean does not fit", id="type"),
        pytest.param("Both", {"from": "mail", "template": "{mail}"}, "either from or template", id="both"),
        pytest.param(
            "T", {"template": "{givenName} {surnam}"}, "unknown users field 'surnam'", id="template"
        ),
        pytest.param(
            "Owner", {"reference": "devices"}, "references come from the device owner", id="ref-on-users"
        ),
        pytest.param(
            "Cut", {"from": "mail", "transform": [{"truncate": 0}]}, "truncate needs a positive", id="trunc"
        ),
        pytest.param(
            "Created", {"from": "createdDateTime"}, "system attributes of every object type", id="system"
        ),
    ],
)
def test_mapping_mistakes_are_found_at_load_time(attr: str, spec: dict[str, object], expected: str) -> None:
    data = example()
    data["mapping"]["object_types"][0]["attributes"][attr] = spec  # type: ignore[index]
    found = problems_of(yaml.safe_dump(data))
    assert any(expected in p and p.startswith("mapping.object_types[0].attributes." + attr) for p in found), (
        found
    )


@pytest.mark.parametrize("field", ["key", "label", "object_type"])
def test_a_list_where_a_name_belongs_is_a_config_error(field: str) -> None:
    data = example()
    data["mapping"]["object_types"][0][field] = ["Entra Object ID"]
    data["mapping"]["object_types"][1]["attributes"]["Owner"] = {"reference": ["users"]}
    with pytest.raises(ConfigError) as info:
        parse_settings(yaml.safe_dump(data))
    assert any(p.path.startswith("mapping.object_types[") for p in info.value.problems)


def test_filters_are_parsed_and_checked() -> None:
    data = example()
    data["mapping"]["object_types"][0]["filter"] = [
        'userType == "Member"',
        "accountEnabled = true",
        "userTyp in [1]",
    ]  # type: ignore[index]
    found = problems_of(yaml.safe_dump(data))
    assert any(p.startswith("mapping.object_types[0].filter[1]: cannot read filter") for p in found)
    assert any(
        p.startswith("mapping.object_types[0].filter[2]: unknown users field 'userTyp'") for p in found
    )
    assert len(found) == 2


def test_environment_variables_are_interpolated() -> None:
    text = EXAMPLE.read_text().replace("site_url: https://contoso.atlassian.net", "site_url: ${JIRA_SITE}")
    text = text.replace("instance: contoso", "instance: ${INSTANCE:-fallback}")
    settings = parse_settings(text, environ={"JIRA_SITE": "https://example.atlassian.net"})
    assert settings.assets.site_url == "https://example.atlassian.net"
    assert settings.instance == "fallback"
    found = problems_of(text)
    assert any(p.startswith("assets.site_url: environment variable JIRA_SITE is not set") for p in found)


def test_yaml_tags_are_never_executed() -> None:
    found = problems_of("instance: !!python/object/apply:os.system ['echo pwned']\n")
    assert found[0].startswith("not valid YAML")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- a\n- b\n",
        "instance: [unclosed\n",
        pytest.param("a: &x [*x]\n", id="recursive-alias"),
        pytest.param("a: &x {b: *x}\n", id="recursive-mapping-alias"),
        pytest.param("a: " + "[" * 3000 + "]" * 3000 + "\n", id="nested-too-deeply"),
    ],
)
def test_malformed_documents_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_settings(text)


def test_the_json_schema_describes_the_file() -> None:
    schema = config_json_schema()
    assert schema["additionalProperties"] is False
    assert {"instance", "entra", "assets", "mapping"} <= set(schema["required"])
    assert "source" not in schema["properties"]
    json.dumps(schema)


def test_cli_reports_every_problem_and_exits_4_without_traceback(tmp_path: Path) -> None:
    data = example()
    data["http"] = {"timeout_s": -1, "max_concurrency": 0}  # type: ignore[index]
    data["entra"]["cloud"] = "mars"  # type: ignore[index]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["--config", str(bad), "plan"])
    assert result.exit_code == 4
    assert "3 configuration problems" in result.output
    for key in ("http.timeout_s", "http.max_concurrency", "entra.cloud"):
        assert key in result.output
    assert "Traceback" not in result.output
    assert "\n  - http.timeout_s: " in result.stderr  # one problem a line, not escaped line breaks


def test_cli_config_check_accepts_the_example() -> None:
    result = CliRunner().invoke(main, ["--config", str(EXAMPLE), "config", "check"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


# -- schedule expressions are read by the daemon's own parser ----------------------------------


@pytest.mark.parametrize(
    ("key", "expr", "expected"),
    [
        pytest.param("incremental", "@every 0s", "the interval must be longer than zero", id="zero-seconds"),
        pytest.param("full", "@every 0.0m", "the interval must be longer than zero", id="zero-minutes"),
        pytest.param("incremental", "@every 100000000h", "at most 366 days", id="overflows"),
        pytest.param("full", "0 3 * * 8", "day of week", id="weekday-8"),
    ],
)
def test_a_schedule_the_daemon_cannot_run_is_a_config_error(key: str, expr: str, expected: str) -> None:
    data = example()
    data["schedule"][key] = expr  # type: ignore[index]
    found = problems_of(yaml.safe_dump(data))
    assert any(p.startswith(f"schedule.{key}: ") and expected in p for p in found), found


@pytest.mark.parametrize("verb", [["config", "check"], ["status"]])
def test_a_zero_interval_exits_4_naming_the_key(tmp_path: Path, verb: list[str]) -> None:
    """``config check`` refuses ``@every 0s``, and ``status`` reports it instead of a traceback."""
    data = example()
    data["schedule"]["incremental"] = "@every 0s"  # type: ignore[index]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["--config", str(bad), *verb])
    assert result.exit_code == 4, result.output
    assert "schedule.incremental: invalid interval: '@every 0s'" in result.output
    assert "Traceback" not in result.output


def test_either_day_cron_expressions_are_accepted() -> None:
    data = example()
    data["schedule"]["full"] = "0 3 1 * 1"  # type: ignore[index]
    assert parse_settings(yaml.safe_dump(data)).schedule.full == "0 3 1 * 1"


# -- secret references name what the vault can store -------------------------------------------


@pytest.mark.parametrize(
    ("section", "key"),
    [
        pytest.param("assets", "api_token", id="secret-only"),
        pytest.param("entra", "tenant_id", id="plain-or-secret"),
        pytest.param("assets", "email", id="email"),
    ],
)
@pytest.mark.parametrize("ref", ["secret:Jira-Token.v2", "secret:9lives", "secret:" + "a" * 64])
def test_a_secret_name_the_vault_cannot_store_is_refused(section: str, key: str, ref: str) -> None:
    """``config check`` refuses what ``importer secrets set`` could never store, naming the key."""
    data = example()
    data[section][key] = ref  # type: ignore[index]
    found = problems_of(yaml.safe_dump(data))
    assert [p for p in found if p.startswith(f"{section}.{key}: ")] == [
        f"{section}.{key}: the name after secret: cannot be stored in the vault: use lower-case letters, "
        "digits and _, starting with a letter, at most 63 characters (e.g. secret:jira_api_token)"
    ]


def test_every_accepted_secret_name_is_one_the_vault_stores() -> None:
    from importer.config import secret_name
    from importer.vault._format import _NAME

    settings = load_settings(EXAMPLE)
    refs = [settings.assets.api_token, settings.entra.client_secret, settings.entra.tenant_id]
    assert all(ref is not None and _NAME.fullmatch(secret_name(ref)) for ref in refs)
    assert config_json_schema()["$defs"]["AssetsSettings"]["properties"]["api_token"]["pattern"] == (
        "^secret:([a-z][a-z0-9_]{0,62})$"
    )


# -- the vault's master keys --------------------------------------------------------------------


def test_kms_required_without_a_key_is_reported_with_every_other_problem(tmp_path: Path) -> None:
    """``config check`` says what ``secrets list`` would fail on later, alongside the other mistakes."""
    data = example()
    data["vault"]["require"] = ["kms"]  # type: ignore[index]
    data["http"]["timeout_s"] = -1  # type: ignore[index]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["--config", str(bad), "config", "check"])
    assert result.exit_code == 4, result.output
    assert "2 configuration problems" in result.output
    assert "vault.require: lists kms, but vault.kms_key_id is not set" in result.output
    assert "http.timeout_s: " in result.output


def test_kms_required_with_a_key_is_valid() -> None:
    data = example()
    data["vault"].update(require=["passphrase", "kms"], kms_key_id="alias/importer")  # type: ignore[attr-defined]
    assert parse_settings(yaml.safe_dump(data)).vault.require == ["passphrase", "kms"]


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.floats(allow_nan=False)
)
_trees = st.recursive(
    _scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    section=st.sampled_from(
        ["entra", "assets", "http", "vault", "state", "schedule", "sync", "logging", "mapping"]
    ),
    value=_trees,
)
def test_any_garbage_in_any_section_is_only_ever_a_config_error(section: str, value: object) -> None:
    data = example()
    data[section] = value
    problems: tuple[object, ...] = ()
    try:
        parse_settings(yaml.safe_dump(data))
    except ConfigError as exc:  # anything else (a traceback) fails the test
        problems = exc.problems
        assert problems  # the error must say what is wrong
