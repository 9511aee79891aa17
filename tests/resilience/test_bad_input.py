"""Bad input: fuzzed configurations, damaged state and vault files, and hostile names from Entra."""

from __future__ import annotations

import copy
import re
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.cli import main
from importer.sandbox.configfile import default_config_document
from tests.resilience.conftest import Twin, clean_sync, snapshot

pytestmark = pytest.mark.resilience

EXAMPLE: dict[str, Any] = default_config_document()
EXAMPLE_TEXT = (Path(__file__).parents[2] / "importer" / "config.example.yaml").read_text(encoding="utf-8")
_WORK = Path(tempfile.mkdtemp(prefix="importer-fuzz-"))
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
FUZZ_MORE = settings(FUZZ, max_examples=400)  # the full suite: more cases, still reproducible


# -- configurations --------------------------------------------------------------------------------


def check_config(text: str) -> tuple[int, str]:
    """``importer config check`` through click, exceptions not caught: a traceback fails the test."""
    path = _WORK / "config.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(path), "config", "check"], catch_exceptions=False)
    assert result.exit_code in (0, 4), f"exit {result.exit_code}:\n{result.output}"
    if result.exit_code == 4:
        assert result.stderr.startswith("importer: "), result.stderr
        assert "Traceback" not in result.stderr
    return result.exit_code, result.stderr.replace("\\u000a", "\n")


def _paths(node: Any, prefix: str = "") -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Every key path of a parsed document, with the steps to reach it."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = f"{prefix}[{key}]" if isinstance(node, list) else (f"{prefix}.{key}" if prefix else str(key))
        yield path, (key,)
        for sub, steps in _paths(value, path):
            yield sub, (key, *steps)


PATHS = list(_paths(EXAMPLE))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["secret:", "secret:x y", "${NOPE}", "${A:-}", "@every 0s", "* * *", "-1", "1e999"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _components(path: str) -> list[str]:
    return [p for p in re.split(r"\.|(\[\d+\])", path) if p]


def _error_paths(stderr: str) -> list[str]:
    """The key paths a config error names (``path: message``, one per problem)."""
    text = stderr.removeprefix("importer: ").replace(f"{_WORK / 'config.yaml'}: ", "")
    paths = []
    for line in text.splitlines():
        head, sep, _ = line.removeprefix("  - ").partition(": ")
        if sep:
            paths.append(head)
    return paths


def _named(stderr: str, mutated: str) -> bool:
    """The error names the mutated key, one of its ancestors or descendants, or (for cross-field rules
    inside one mapping entry) a key of the same entry."""
    want = _components(mutated)
    scope = want[:3] if want[:2] == ["mapping", "object_types"] else want[:1]
    return any(_components(p)[: len(scope)] == scope for p in _error_paths(stderr))


MUTATION = {
    "target": st.sampled_from(PATHS),
    "action": st.sampled_from(["delete", "replace", "add"]),
    "value": values,
    "extra": st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10),
}


def _mutate_and_check(target: tuple[str, tuple[Any, ...]], action: str, value: Any, extra: str) -> None:
    path, steps = target
    doc = copy.deepcopy(EXAMPLE)
    parent = doc
    for step in steps[:-1]:
        parent = parent[step]
    last = steps[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif isinstance(parent[last], dict):
        parent[last][f"zz_{extra}"] = value
        path = f"{path}.zz_{extra}"
    else:
        parent[last] = {f"zz_{extra}": value}
    code, stderr = check_config(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    if code == 4:
        assert _named(stderr, path), f"the error does not name {path}:\n{stderr}"


@pytest.mark.quick
@FUZZ
@given(**MUTATION)
def test_a_mutated_example_config_is_valid_or_a_config_error_naming_the_key(
    target: tuple[str, tuple[Any, ...]], action: str, value: Any, extra: str
) -> None:
    _mutate_and_check(target, action, value, extra)


@FUZZ_MORE
@given(**MUTATION)
def test_400_more_mutated_example_configs(
    target: tuple[str, tuple[Any, ...]], action: str, value: Any, extra: str
) -> None:
    _mutate_and_check(target, action, value, extra)


@FUZZ_MORE
@given(doc=st.dictionaries(st.text(max_size=15) | st.integers() | st.none(), values, max_size=6))
def test_a_random_document_is_a_config_error_never_a_traceback(doc: dict[Any, Any]) -> None:
    code, stderr = check_config(yaml.safe_dump(doc, allow_unicode=True))
    assert code == 4  # nothing random has the required sections
    assert "configuration problem" in stderr or ": " in stderr


@FUZZ_MORE
@given(
    cut=st.integers(min_value=0, max_value=len(EXAMPLE_TEXT)),
    length=st.integers(min_value=0, max_value=60),
    insert=st.sampled_from(
        ["", ":", " {", "[", "\t", "- ", "!!python/object:os.system [ls]", "&a", "*a", "'", '"', "\x00", "%"]
    ),
)
def test_damaged_yaml_text_is_a_config_error_never_a_traceback(cut: int, length: int, insert: str) -> None:
    check_config(EXAMPLE_TEXT[:cut] + insert + EXAMPLE_TEXT[cut + length :])


@pytest.mark.quick
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("!!python/object/apply:os.system ['true']\n", id="python-tag"),
        pytest.param("- a\n- b\n", id="a-list"),
        pytest.param("a: &x [*x]\n", id="recursive-alias"),
        pytest.param("\ufeffinstance: x\n", id="bom"),
        pytest.param("instance: [" * 200, id="deep-nesting"),
    ],
)
def test_hand_picked_bad_files_are_config_errors(text: str) -> None:
    assert check_config(text)[0] == 4


# -- damaged state and vault ----------------------------------------------------------------------


def _state_file(twin: Twin) -> Path:
    return twin.env.config.with_suffix(".db")


def _vault_file(twin: Twin) -> Path:
    return twin.env.config.with_suffix(".vault")


def _no_object_writes(twin: Twin) -> bool:
    return not any(
        r["method"] in ("POST", "PUT", "DELETE") and not r["route"].endswith("/aql")
        for r in twin.sb.stats()["requests"]
        if r["service"] == "assets"
    )


@pytest.mark.parametrize(
    "damage", [pytest.param("truncated", marks=pytest.mark.quick), "garbage-header", "garbage-middle"]
)
def test_a_damaged_state_file_is_named_and_nothing_is_written(synced: Twin, damage: str) -> None:
    state = _state_file(synced)
    data = bytearray(state.read_bytes())
    assert len(data) > 8192, "the state file is smaller than the test assumes"
    if damage == "truncated":
        data = data[: len(data) // 2 + 100]
    elif damage == "garbage-header":
        data[:100] = b"\xde\xad\xbe\xef" * 25
    else:
        middle = len(data) // 2
        data[middle : middle + 4096] = bytes((i * 37) % 256 for i in range(4096))
    state.write_bytes(bytes(data))
    synced.mutate(update_users=3)
    synced.sb.reset_stats()
    result = synced.env.run("sync")
    assert result.code in (1, 4), result.out
    assert str(state) in result.err, result.err
    assert _no_object_writes(synced)
    state.unlink()  # what the admin does: set the damaged file aside and start over
    recovered = synced.env.run("sync")
    assert recovered.code == 0, recovered.err
    synced.check()


@pytest.mark.parametrize("damage", ["truncated", "bit-flip", "not-a-vault"])
def test_a_damaged_vault_is_named_and_nothing_is_read_or_written(synced: Twin, damage: str) -> None:
    vault = _vault_file(synced)
    original = vault.read_bytes()
    data = bytearray(original)
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "bit-flip":
        data[-40] ^= 0x01
    else:
        data = bytearray(b"just some text\n")
    vault.write_bytes(bytes(data))
    synced.sb.reset_stats()
    result = synced.env.run("sync")
    assert result.code == 4, result.out + result.err
    assert str(vault) in result.err or vault.name in result.err, result.err
    assert not synced.sb.stats()["requests"], "the importer talked to Entra or Assets without credentials"
    vault.write_bytes(original)  # restored from backup: the next sync converges
    synced.mutate(update_users=2)
    assert synced.env.run("sync").code == 0
    synced.check()


# -- hostile names from Entra ---------------------------------------------------------------------

LONG = "Ö" * 120 + "x" * 150 + "🚀" * 30  # 300 characters, some outside the BMP
HOSTILE_USERS: list[dict[str, Any]] = [
    {"displayName": 'Robert "Bobby" O\'Brien', "jobTitle": "Head of \"Quotes\" & 'Apostrophes'"},
    {"displayName": 'C:\\Users\\admin \\" \\\\server\\share', "department": "Back\\slash"},
    {"displayName": "Line one\nLine two\r\nthree\ttabbed", "jobTitle": "Multi\nline"},
    {"displayName": "Zoë 🚀👩🏽‍💻 Smith 🏳️‍🌈", "officeLocation": "Café ☕"},
    {"displayName": "مرحبا بالعالم עולם", "jobTitle": "\u202eevil\u202c override", "department": "دعم"},
    {"displayName": LONG, "jobTitle": "J" * 300},
    {"displayName": None, "jobTitle": None, "department": None, "mail": None, "officeLocation": None},
    {
        "displayName": "Jane Doe (Fabrikam)",
        "userPrincipalName": "Jane.Doe_fabrikam.com#EXT#@contoso.onmicrosoft.com",
        "mail": "Jane.Doe@Fabrikam.com",
        "userType": "Guest",
    },
    {"displayName": "e\u0301le\u0300ve NFD", "jobTitle": "  padded  "},
    {"displayName": "<script>alert(1)</script>", "department": "'; DROP TABLE users; --"},
]
HOSTILE_DEVICES: list[dict[str, Any]] = [
    {"displayName": 'LAPTOP-"QUOTED"\\01', "Model": "Model\nNewline"},
    {"displayName": "📱 iPhone de Zoë", "Manufacturer": "Äpple"},
    {"displayName": None, "operatingSystemVersion": None, "Manufacturer": None},
    {"displayName": "D" * 300},
]


@pytest.mark.parametrize("when", [pytest.param("first-sync", marks=pytest.mark.quick), "incremental"])
def test_hostile_names_sync_correctly_and_stay_stable(twin: Twin, when: str) -> None:
    assert twin.sb.directory is not None
    users = [u for u in twin.sb.directory.users.order if u][: len(HOSTILE_USERS)]
    devices = list(twin.sb.directory.devices.order)[: len(HOSTILE_DEVICES)]
    if when == "incremental":
        clean_sync(twin.env)
        clean_sync(twin.ref)
    twin.set_fields("users", dict(zip(users, HOSTILE_USERS, strict=True)))
    twin.set_fields("devices", dict(zip(devices, HOSTILE_DEVICES, strict=True)))
    result = twin.env.run("sync")
    assert result.code == 0, result.out + result.err
    got = twin.check()
    by_user = got["Entra User"]

    def nfc(text: str) -> str:
        return unicodedata.normalize("NFC", text).rstrip()

    for gid, props in zip(users, HOSTILE_USERS, strict=True):
        name = props["displayName"]
        stored = by_user[gid].get("Name")
        if name is None:
            assert stored == "(no display name)"
        elif len(name) > 255:
            assert isinstance(stored, str)
            assert len(stored) <= 255
            assert stored.endswith("…")
            assert name.startswith(stored[:-1])
        else:
            assert stored == nfc(name), (stored, name)
    guest = by_user[users[7]]
    assert guest["User Principal Name"] == "jane.doe_fabrikam.com#ext#@contoso.onmicrosoft.com"
    assert guest["Email"] == "jane.doe@fabrikam.com"
    cleared = by_user[users[6]]
    if when == "first-sync":
        assert "Job Title" not in cleared
    devices_got = snapshot(twin.sb)["Entra Device"]
    assert devices_got[devices[0]]["Name"] == 'LAPTOP-"QUOTED"\\01'
    assert devices_got[devices[2]]["Name"] == "(unnamed device)"
