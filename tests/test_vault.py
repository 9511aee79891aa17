"""The credential vault: envelope encryption, tamper evidence, rotation, file modes, KMS."""

from __future__ import annotations

import base64
import copy
import json
import pickle
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st

from importer import vault as vault_mod
from importer.errors import ConfigError, CredentialError
from importer.logs import registered_secrets
from importer.vault import (
    DEFAULT_SCRYPT,
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    LOG_PEPPER,
    WELL_KNOWN,
    KmsAccessDeniedError,
    KmsContextError,
    KmsError,
    KmsKeyDisabledError,
    KmsKeyMismatchError,
    KmsKeyNotFoundError,
    KmsKeyPendingDeletionError,
    KmsUnavailableError,
    MissingSecretError,
    PassphraseMissingError,
    RequireMismatchError,
    ScryptParams,
    Secret,
    Vault,
    VaultChangedError,
    VaultCorruptError,
    VaultError,
    VaultExistsError,
    VaultNotFoundError,
    VaultPermissionError,
    VaultSettings,
    VaultTamperedError,
    VaultTruncatedError,
    VaultUsageError,
    VaultVersionError,
    VaultWriteError,
    WrongKeyError,
)
from tests.conftest import free_port

FAST = ScryptParams(n=2**4, r=1, p=1)  # production cost is 2**15; tests only need the code path
PASS = "correct horse battery staple"
ENV = {ENV_PASSPHRASE: PASS}
CANARIES = {name: f"CANARY-{name}-9f2c4e" for name in WELL_KNOWN if name != LOG_PEPPER}


def settings_for(tmp_path: Path, **overrides: Any) -> VaultSettings:
    """Settings for a vault in tmp_path (passphrase mode unless told otherwise)."""
    values: dict[str, Any] = {"path": tmp_path / "secrets" / "vault.json", "instance": "test-instance"}
    values.update(overrides)
    return VaultSettings(**values)


def fill(vault: Vault) -> None:
    """Store every well-known credential as a canary value."""
    for name, value in CANARIES.items():
        vault.set(name, value)


def assert_no_canary(text: str) -> None:
    """No canary value, nor the passphrase, appears in text."""
    for value in (*CANARIES.values(), PASS):
        assert value not in text


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client built without an explicit endpoint goes to a dead local port, never to AWS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


@pytest.fixture
def settings(tmp_path: Path) -> VaultSettings:
    return settings_for(tmp_path)


@pytest.fixture
def filled(settings: VaultSettings) -> Path:
    """A passphrase vault holding every well-known secret; returns its path."""
    vault = Vault.create(settings, environ=ENV, scrypt=FAST)
    fill(vault)
    return settings.path


@pytest.fixture
def decrypted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every value the vault registers with the log redactor, i.e. every value it decrypts."""
    seen: list[str] = []
    monkeypatch.setattr(vault_mod, "register_secret", seen.append)
    return seen


def expect_refusal(
    path: Path, action: Callable[[], object], error: type[VaultError], *, names_file: bool = True
) -> VaultError:
    """Run action, expecting ``error``; the file must be byte-for-byte untouched."""
    before = path.read_bytes()
    with pytest.raises(error) as caught:
        action()
    assert path.read_bytes() == before
    if names_file:
        assert str(path) in str(caught.value)
    assert_no_canary(str(caught.value) + repr(caught.value))
    return caught.value


# --- basics -----------------------------------------------------------------------------------


def test_round_trip_keeps_every_value_and_generates_a_log_pepper(
    settings: VaultSettings, filled: Path
) -> None:
    vault = Vault.open(settings, environ=ENV)
    assert [info.name for info in vault.names()] == sorted([*CANARIES, LOG_PEPPER])
    for name, value in CANARIES.items():
        assert vault.get(name).reveal() == value
    assert len(base64.b64decode(vault.get(LOG_PEPPER).reveal(), validate=True)) == 32
    assert vault.verify() == sorted([*CANARIES, LOG_PEPPER])
    assert vault.resolve(["jira_email", "jira_api_token"])["jira_email"].reveal() == CANARIES["jira_email"]


def test_the_file_holds_no_plaintext_and_describes_itself(filled: Path) -> None:
    text = filled.read_text()
    assert_no_canary(text)
    doc = json.loads(text)
    assert (doc["format"], doc["version"], doc["require"]) == ("importer-vault", 1, ["passphrase"])
    assert doc["kek"]["passphrase"]["kdf"] == "scrypt"
    assert set(doc["secrets"]["jira_api_token"]) == {"nonce", "ciphertext", "set_at"}


def test_every_decrypted_value_is_registered_with_the_log_redactor(
    filled: Path, settings: VaultSettings
) -> None:
    vault = Vault.open(settings, environ=ENV)
    vault.get("jira_api_token")
    assert CANARIES["jira_api_token"] in registered_secrets()


def test_production_scrypt_cost_is_at_least_2_pow_15(settings: VaultSettings) -> None:
    assert DEFAULT_SCRYPT.n >= 2**15
    assert ScryptParams().n >= 2**15
    Vault.create(settings, environ=ENV)  # the real cost, once
    assert json.loads(settings.path.read_text())["kek"]["passphrase"]["n"] >= 2**15


def test_missing_names_are_all_reported_at_once(filled: Path, settings: VaultSettings) -> None:
    vault = Vault.open(settings, environ=ENV)
    with pytest.raises(MissingSecretError) as caught:
        vault.resolve(["jira_email", "nope_one", "nope_two"])
    assert caught.value.names == ("nope_one", "nope_two")
    assert "nope_one, nope_two" in str(caught.value)
    with pytest.raises(KeyError):
        vault.get("nope_one")
    with pytest.raises(CredentialError):
        vault.delete("nope_one")


def test_set_replaces_and_delete_removes(filled: Path, settings: VaultSettings) -> None:
    vault = Vault.open(settings, environ=ENV)
    vault.set("jira_api_token", "CANARY-replacement-token")
    vault.delete("entra_cert_password")
    again = Vault.open(settings, environ=ENV)
    assert again.get("jira_api_token").reveal() == "CANARY-replacement-token"
    assert "entra_cert_password" not in [info.name for info in again.names()]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("Bad-Name", "value-123", id="upper-case-and-dash"),
        pytest.param("", "value-123", id="empty-name"),
        pytest.param("ok_name", "", id="empty-value"),
        pytest.param("ok_name", "a\x00b", id="nul-in-value"),
    ],
)
def test_bad_names_and_values_are_refused(
    filled: Path, settings: VaultSettings, name: str, value: str
) -> None:
    vault = Vault.open(settings, environ=ENV)
    expect_refusal(filled, lambda: vault.set(name, value), VaultUsageError, names_file=False)


def test_create_without_hard_links_still_never_overwrites(
    settings: VaultSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(vault_mod.os, "link", no_links)
    Vault.create(settings, environ=ENV, scrypt=FAST)
    assert stat.S_IMODE(settings.path.stat().st_mode) == 0o600
    expect_refusal(settings.path, lambda: Vault.create(settings, environ=ENV, scrypt=FAST), VaultExistsError)


def test_create_refuses_to_overwrite(filled: Path, settings: VaultSettings) -> None:
    expect_refusal(filled, lambda: Vault.create(settings, environ=ENV, scrypt=FAST), VaultExistsError)


def test_open_without_a_file_says_how_to_create_one(settings: VaultSettings) -> None:
    with pytest.raises(VaultNotFoundError, match="importer secrets init"):
        Vault.open(settings, environ=ENV)


def test_a_short_new_passphrase_is_refused(settings: VaultSettings) -> None:
    with pytest.raises(VaultUsageError, match="at least 12"):
        Vault.create(settings, passphrase="short", scrypt=FAST)
    assert not settings.path.exists()


def test_a_concurrent_change_is_not_overwritten(filled: Path, settings: VaultSettings) -> None:
    first, second = Vault.open(settings, environ=ENV), Vault.open(settings, environ=ENV)
    first.set("jira_email", "CANARY-first-writer")
    expect_refusal(filled, lambda: second.set("jira_email", "CANARY-second-writer"), VaultChangedError)
    assert Vault.open(settings, environ=ENV).get("jira_email").reveal() == "CANARY-first-writer"


# --- passphrase sources -----------------------------------------------------------------------


def test_passphrase_from_a_file_named_by_the_environment(tmp_path: Path, filled: Path) -> None:
    secret_file = tmp_path / "encryption-string"
    secret_file.write_text(PASS + "\n")
    vault = Vault.open(settings_for(tmp_path), environ={ENV_PASSPHRASE_FILE: str(secret_file)})
    assert vault.get("jira_email").reveal() == CANARIES["jira_email"]


def test_passphrase_from_the_config_file_and_the_environment_wins(tmp_path: Path, filled: Path) -> None:
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.write_text(PASS)
    wrong.write_text("not the encryption string")
    assert Vault.open(settings_for(tmp_path, passphrase_file=right), environ={}).verify()
    env_wins = {ENV_PASSPHRASE_FILE: str(right)}
    assert Vault.open(settings_for(tmp_path, passphrase_file=wrong), environ=env_wins).verify()


def test_no_passphrase_source_names_the_environment_variables(filled: Path, settings: VaultSettings) -> None:
    error = expect_refusal(filled, lambda: Vault.open(settings, environ={}), PassphraseMissingError)
    assert ENV_PASSPHRASE in str(error)
    assert ENV_PASSPHRASE_FILE in str(error)
    assert "vault.passphrase_file" in str(error)


@pytest.mark.parametrize("content", [pytest.param(None, id="missing"), pytest.param("\n", id="empty")])
def test_an_unusable_passphrase_file_is_named(tmp_path: Path, filled: Path, content: str | None) -> None:
    secret_file = tmp_path / "encryption-string"
    if content is not None:
        secret_file.write_text(content)
    action = lambda: Vault.open(settings_for(tmp_path), environ={ENV_PASSPHRASE_FILE: str(secret_file)})  # noqa: E731
    assert str(secret_file) in str(expect_refusal(filled, action, PassphraseMissingError))


def test_no_built_in_default_key(settings: VaultSettings) -> None:
    with pytest.raises(PassphraseMissingError):
        Vault.create(settings, environ={}, scrypt=FAST)
    assert not settings.path.exists()


# --- wrong keys and damaged files -------------------------------------------------------------


def test_wrong_passphrase_is_a_clear_error_and_decrypts_nothing(
    filled: Path, settings: VaultSettings, decrypted: list[str]
) -> None:
    error = expect_refusal(
        filled, lambda: Vault.open(settings, environ={ENV_PASSPHRASE: "wrong horse battery"}), WrongKeyError
    )
    assert str(error) == f"cannot decrypt {filled}: wrong encryption string, or the file was tampered with"
    assert decrypted == []


@pytest.mark.parametrize("mask", [pytest.param(0x01, id="low-bit"), pytest.param(0x20, id="case-bit")])
def test_a_byte_flipped_anywhere_is_detected(
    filled: Path, settings: VaultSettings, decrypted: list[str], mask: int
) -> None:
    original = filled.read_bytes()
    kinds: set[str] = set()
    for position in range(len(original)):
        damaged = bytearray(original)
        damaged[position] ^= mask
        filled.write_bytes(bytes(damaged))
        with pytest.raises(VaultError) as caught:
            Vault.open(settings, environ=ENV)
        assert str(filled) in str(caught.value), position
        assert filled.read_bytes() == bytes(damaged)  # never "repaired" or rewritten
        kinds.add(type(caught.value).__name__)
    assert decrypted == []
    assert {"VaultCorruptError", "WrongKeyError", "VaultTamperedError"} <= kinds


def test_whitespace_changed_to_other_whitespace_is_detected(filled: Path, settings: VaultSettings) -> None:
    filled.write_bytes(filled.read_bytes().replace(b'\n  "created_at"', b'\n\t"created_at"'))
    with pytest.raises(VaultTamperedError, match="not byte for byte"):
        Vault.open(settings, environ=ENV)


def rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit the document and write it back in canonical form, keeping the old MAC."""
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=True) + "\n")


def test_ciphertexts_swapped_between_names_fail(filled: Path, settings: VaultSettings) -> None:
    def swap(doc: dict[str, Any]) -> None:
        s = doc["secrets"]
        s["jira_api_token"], s["entra_client_secret"] = s["entra_client_secret"], s["jira_api_token"]

    rewrite(filled, swap)
    expect_refusal(filled, lambda: Vault.open(settings, environ=ENV), VaultTamperedError)


def test_a_value_moved_under_another_name_does_not_decrypt_even_with_a_valid_mac(
    filled: Path, settings: VaultSettings
) -> None:
    """Beyond the MAC: the AAD binds each ciphertext to its name (white box: re-MAC with the data key)."""
    vault = Vault.open(settings, environ=ENV)
    doc = vault._doc
    moved = {**doc.secrets, "jira_api_token": doc.secrets["entra_client_secret"]}
    vault._commit(replace(doc, secrets=moved), vault._dek)
    reopened = Vault.open(settings, environ=ENV)
    with pytest.raises(VaultTamperedError, match="'jira_api_token' does not decrypt under its own name"):
        reopened.get("jira_api_token")
    assert reopened.get("entra_client_secret").reveal() == CANARIES["entra_client_secret"]


def test_a_truncated_file_is_named_as_truncated(filled: Path, settings: VaultSettings) -> None:
    original = filled.read_bytes()
    for length in range(len(original) - 1):
        filled.write_bytes(original[:length])
        with pytest.raises(VaultTruncatedError, match="truncated"):
            Vault.open(settings, environ=ENV)


@pytest.mark.parametrize("version", [2, 0, "1"])
def test_an_unknown_version_is_refused(filled: Path, settings: VaultSettings, version: object) -> None:
    rewrite(filled, lambda doc: doc.update(version=version))
    error = expect_refusal(filled, lambda: Vault.open(settings, environ=ENV), VaultVersionError)
    assert f"version {version!r}" in str(error)
    assert "reads version 1" in str(error)


def test_a_file_that_is_not_a_vault_is_refused(filled: Path, settings: VaultSettings) -> None:
    filled.write_text('{"hello": "world"}\n')
    with pytest.raises(VaultCorruptError, match="not an importer vault"):
        Vault.open(settings, environ=ENV)


def _set(path: tuple[str, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        pytest.param(("kek", "passphrase", "n"), "many", "kek.passphrase.n must be an integer", id="n"),
        pytest.param(("kek", "passphrase", "r"), 1.5, "kek.passphrase.r must be an integer", id="r"),
        pytest.param(("kek", "passphrase", "p"), None, "kek.passphrase.p must be an integer", id="p"),
        pytest.param(
            ("secrets", "jira_email", "set_at"),
            "yesterday",
            "secrets.jira_email.set_at is not a UTC timestamp",
            id="set_at",
        ),
        pytest.param(
            ("secrets", "jira_email", "ciphertext"),
            "not base64!",
            "secrets.jira_email.ciphertext is not valid base64",
            id="secret-ciphertext",
        ),
        pytest.param(
            ("data_key", "ciphertext"), "AAAA", "data_key.ciphertext has the wrong length", id="data-key"
        ),
    ],
)
def test_a_malformed_field_is_named_by_its_full_key_path(
    filled: Path, settings: VaultSettings, field: tuple[str, ...], value: object, named: str
) -> None:
    rewrite(filled, _set(field, value))
    error = expect_refusal(filled, lambda: Vault.open(settings, environ=ENV), VaultCorruptError)
    assert f"is corrupted: {named};" in str(error)


def test_absurd_scrypt_parameters_are_refused_before_any_work(filled: Path, settings: VaultSettings) -> None:
    rewrite(filled, lambda doc: doc["kek"]["passphrase"].update(n=2**40))
    with pytest.raises(VaultCorruptError, match="scrypt parameters"):
        Vault.open(settings, environ=ENV)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param('{\n"version": ' + "9" * 5000 + "\n}\n", id="huge-integer"),
        pytest.param('{\n"a": ' + "[" * 100_000 + "]" * 100_000 + "\n}\n", id="deep-nesting"),
        pytest.param("\u00e9t\u00e9\n}\n", id="not-ascii"),
        pytest.param("[1, 2]\n}\n", id="not-an-object"),
    ],
)
def test_hostile_files_fail_cleanly(settings: VaultSettings, content: str) -> None:
    settings.path.parent.mkdir(mode=0o700)
    settings.path.write_text(content)
    settings.path.chmod(0o600)
    with pytest.raises(VaultCorruptError):
        Vault.open(settings, environ=ENV)


def _paths(node: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    return found


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings_hypothesis(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_field_replaced_by_any_json_fails_as_a_vault_error(data: st.DataObject) -> None:
    """Whatever a field is replaced with, opening fails with a VaultError, never anything else."""
    with tempfile.TemporaryDirectory() as directory:
        settings = settings_for(Path(directory))
        Vault.create(settings, environ=ENV, scrypt=FAST).set("jira_email", "CANARY-hypothesis")
        doc = json.loads(settings.path.read_text())
        where = data.draw(st.sampled_from(_paths(doc)))
        value = data.draw(_JSON)
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        if parent[where[-1]] == value:
            return
        parent[where[-1]] = value
        settings.path.write_text(json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=True) + "\n")
        with pytest.raises(VaultError):
            Vault.open(settings, environ=ENV).verify()


@settings_hypothesis(max_examples=200, deadline=None)
@given(content=st.binary(max_size=600))
def test_arbitrary_bytes_fail_as_a_vault_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        settings = settings_for(Path(directory))
        settings.path.parent.mkdir(mode=0o700)
        settings.path.write_bytes(content)
        settings.path.chmod(0o600)
        with pytest.raises(VaultError):
            Vault.open(settings, environ=ENV)


# --- file modes and atomic writes -------------------------------------------------------------


def test_files_are_0600_in_a_0700_directory_and_no_temp_file_remains(
    filled: Path, settings: VaultSettings
) -> None:
    assert stat.S_IMODE(filled.stat().st_mode) == 0o600
    assert stat.S_IMODE(filled.parent.stat().st_mode) == 0o700
    Vault.open(settings, environ=ENV).set("jira_email", "CANARY-new-mail")
    assert stat.S_IMODE(filled.stat().st_mode) == 0o600
    assert [p.name for p in filled.parent.iterdir()] == [filled.name]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o607])
def test_a_vault_readable_by_others_is_refused_with_the_fix(
    filled: Path, settings: VaultSettings, mode: int
) -> None:
    filled.chmod(mode)
    error = expect_refusal(filled, lambda: Vault.open(settings, environ=ENV), VaultPermissionError)
    assert f"chmod 600 {filled}" in str(error)
    assert f"{mode:04o}" in str(error)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
    filled: Path, settings: VaultSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = Vault.open(settings, environ=ENV)

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vault_mod.os, "replace", broken_replace)
    before = filled.read_bytes()
    with pytest.raises(VaultWriteError, match="No space left on device; the old file is unchanged"):
        vault.set("jira_email", "CANARY-never-written")
    assert filled.read_bytes() == before
    assert [p.name for p in filled.parent.iterdir()] == [filled.name]


# --- rotation ---------------------------------------------------------------------------------


def secrets_section(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())["secrets"])


def test_rotating_the_passphrase_keeps_values_and_the_old_one_stops_working(
    filled: Path, settings: VaultSettings
) -> None:
    before = secrets_section(filled)
    Vault.open(settings, environ=ENV).rotate(new_passphrase="a brand new encryption string", scrypt=FAST)
    expect_refusal(filled, lambda: Vault.open(settings, environ=ENV), WrongKeyError)
    vault = Vault.open(settings, environ={ENV_PASSPHRASE: "a brand new encryption string"})
    assert {n: vault.get(n).reveal() for n in CANARIES} == CANARIES
    assert secrets_section(filled) == before  # only the data key was re-wrapped


def test_data_key_rotation_changes_every_ciphertext(filled: Path, settings: VaultSettings) -> None:
    before = secrets_section(filled)
    Vault.open(settings, environ=ENV).rotate(data_key=True)
    after = secrets_section(filled)
    assert after.keys() == before.keys()
    for name in before:
        assert after[name]["ciphertext"] != before[name]["ciphertext"]
        assert after[name]["nonce"] != before[name]["nonce"]
        assert after[name]["set_at"] == before[name]["set_at"]
    vault = Vault.open(settings, environ=ENV)
    assert {n: vault.get(n).reveal() for n in CANARIES} == CANARIES


def test_a_rotated_handle_keeps_working(filled: Path, settings: VaultSettings) -> None:
    vault = Vault.open(settings, environ=ENV)
    vault.rotate(data_key=True, new_passphrase="yet another encryption string", scrypt=FAST)
    vault.set("jira_email", "CANARY-after-rotation")
    reopened = Vault.open(settings, environ={ENV_PASSPHRASE: "yet another encryption string"})
    assert reopened.get("jira_email").reveal() == "CANARY-after-rotation"


# --- values and settings ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Holder:
    token: Secret


def test_a_secret_never_shows_its_value() -> None:
    secret = Secret("CANARY-secret-value")
    for text in (
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        repr(_Holder(secret)),
        repr([secret]),
    ):
        assert "CANARY" not in text
    assert str(secret) == repr(secret) == "***"
    assert secret.reveal() == "CANARY-secret-value"
    assert secret == Secret("CANARY-secret-value")
    assert secret != Secret("other")
    assert secret != "CANARY-secret-value"
    assert copy.deepcopy(secret) is secret
    with pytest.raises(TypeError):
        hash(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        json.dumps({"token": secret})
    with pytest.raises(TypeError):
        vars(secret)


def test_no_value_in_the_repr_of_any_object(filled: Path, settings: VaultSettings) -> None:
    vault = Vault.open(settings, environ=ENV)
    objects: list[object] = [vault, vault.names(), vault.resolve(CANARIES), settings, vault._doc]
    assert_no_canary(" ".join(repr(o) for o in objects))
    with pytest.raises(TypeError):
        pickle.dumps(vault)


def test_settings_default_require_follows_the_kms_key(tmp_path: Path) -> None:
    assert settings_for(tmp_path).require == ("passphrase",)
    assert settings_for(tmp_path, kms_key_id="alias/x").require == ("kms",)
    both = settings_for(tmp_path, kms_key_id="alias/x", require=("kms", "passphrase"))
    assert both.require == ("passphrase", "kms")
    with pytest.raises(ConfigError, match=r"vault\.require"):
        settings_for(tmp_path, require=("password",))
    with pytest.raises(ConfigError, match=r"vault\.kms_key_id"):
        settings_for(tmp_path, require=("kms",))


# --- AWS KMS (moto in server mode on 127.0.0.1) -----------------------------------------------


@pytest.fixture
def kms(moto_endpoint: str) -> Any:
    return boto3.client("kms", region_name="eu-west-1", endpoint_url=moto_endpoint)


@pytest.fixture
def kms_key(kms: Any) -> str:
    return str(kms.create_key(Description="importer vault test")["KeyMetadata"]["KeyId"])


def kms_settings(tmp_path: Path, endpoint: str, key: str, **overrides: Any) -> VaultSettings:
    values = {"kms_key_id": key, "kms_region": "eu-west-1", "kms_endpoint_url": endpoint, **overrides}
    return settings_for(tmp_path, **values)


def test_kms_round_trip_with_the_installation_context(
    tmp_path: Path, moto_endpoint: str, kms_key: str
) -> None:
    settings = kms_settings(tmp_path, moto_endpoint, kms_key)
    fill(Vault.create(settings, environ={}))
    vault = Vault.open(settings, environ={})
    assert {n: vault.get(n).reveal() for n in CANARIES} == CANARIES
    doc = json.loads(settings.path.read_text())
    assert doc["require"] == ["kms"]
    assert "passphrase" not in doc["kek"]
    assert doc["kek"]["kms"]["encryption_context"] == {
        "importer:instance": "test-instance",
        "importer:vault": doc["vault_id"],
    }


def test_kms_wrong_encryption_context_is_named(tmp_path: Path, moto_endpoint: str, kms_key: str) -> None:
    fill(Vault.create(kms_settings(tmp_path, moto_endpoint, kms_key), environ={}))
    elsewhere = kms_settings(tmp_path, moto_endpoint, kms_key, instance="another-instance")
    error = expect_refusal(elsewhere.path, lambda: Vault.open(elsewhere, environ={}), KmsContextError)
    assert "encryption context" in str(error)
    assert "'test-instance'" in str(error)


def test_kms_disabled_key(tmp_path: Path, moto_endpoint: str, kms: Any, kms_key: str) -> None:
    settings = kms_settings(tmp_path, moto_endpoint, kms_key)
    fill(Vault.create(settings, environ={}))
    kms.disable_key(KeyId=kms_key)
    error = expect_refusal(settings.path, lambda: Vault.open(settings, environ={}), KmsKeyDisabledError)
    assert "disabled" in str(error)
    assert "enable-key" in str(error)


def test_kms_key_pending_deletion(tmp_path: Path, moto_endpoint: str, kms: Any, kms_key: str) -> None:
    settings = kms_settings(tmp_path, moto_endpoint, kms_key)
    fill(Vault.create(settings, environ={}))
    kms.schedule_key_deletion(KeyId=kms_key, PendingWindowInDays=7)
    error = expect_refusal(
        settings.path, lambda: Vault.open(settings, environ={}), KmsKeyPendingDeletionError
    )
    assert "scheduled for deletion" in str(error)
    assert "cancel-key-deletion" in str(error)


def test_kms_access_denied_for_another_key(
    tmp_path: Path, moto_endpoint: str, kms: Any, kms_key: str
) -> None:
    fill(Vault.create(kms_settings(tmp_path, moto_endpoint, kms_key), environ={}))
    other = str(kms.create_key()["KeyMetadata"]["KeyId"])
    settings = kms_settings(tmp_path, moto_endpoint, other)
    error = expect_refusal(settings.path, lambda: Vault.open(settings, environ={}), KmsAccessDeniedError)
    assert other in str(error)


def test_kms_unreachable(tmp_path: Path, moto_endpoint: str, kms_key: str) -> None:
    fill(Vault.create(kms_settings(tmp_path, moto_endpoint, kms_key), environ={}))
    settings = kms_settings(tmp_path, f"http://127.0.0.1:{free_port()}", kms_key)
    expect_refusal(settings.path, lambda: Vault.open(settings, environ={}), KmsUnavailableError)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        pytest.param("AccessDeniedException", KmsAccessDeniedError, id="access-denied"),
        pytest.param("DisabledException", KmsKeyDisabledError, id="disabled"),
        pytest.param("KMSInvalidStateException", KmsKeyPendingDeletionError, id="pending-deletion"),
        pytest.param("InvalidCiphertextException", KmsContextError, id="wrong-context"),
        pytest.param("IncorrectKeyException", KmsKeyMismatchError, id="other-key"),
        pytest.param("NotFoundException", KmsKeyNotFoundError, id="no-such-key"),
        pytest.param("KMSInternalException", KmsUnavailableError, id="kms-failure"),
    ],
)
def test_real_kms_error_codes_map_to_distinct_errors(
    tmp_path: Path, moto_endpoint: str, kms_key: str, code: str, error: type[KmsError]
) -> None:
    """Real KMS reports key states from Decrypt itself (moto does not); a Stubber plays that part."""
    settings = kms_settings(tmp_path, moto_endpoint, kms_key)
    fill(Vault.create(settings, environ={}))
    client = boto3.client("kms", region_name="eu-west-1", endpoint_url="http://127.0.0.1:9")
    with Stubber(client) as stub:
        stub.add_client_error(
            "describe_key", service_error_code="AccessDeniedException"
        )  # skipped, not fatal
        stub.add_client_error("decrypt", service_error_code=code, service_message=CANARIES["jira_api_token"])
        caught = expect_refusal(
            settings.path, lambda: Vault.open(settings, environ={}, kms_client=client), error
        )
    assert code in str(caught)


def test_rotating_from_passphrase_to_kms_and_to_another_key(
    filled: Path, tmp_path: Path, moto_endpoint: str, kms: Any, kms_key: str
) -> None:
    local = settings_for(tmp_path, kms_region="eu-west-1", kms_endpoint_url=moto_endpoint)
    Vault.open(local, environ=ENV).rotate(to_kms=kms_key)
    settings = kms_settings(tmp_path, moto_endpoint, kms_key)
    assert Vault.open(settings, environ={}).get("jira_email").reveal() == CANARIES["jira_email"]
    second = str(kms.create_key()["KeyMetadata"]["KeyId"])
    Vault.open(settings, environ={}).rotate(to_kms=second)
    kms.disable_key(KeyId=kms_key)
    moved = kms_settings(tmp_path, moto_endpoint, second)
    assert Vault.open(moved, environ={}).get("jira_email").reveal() == CANARIES["jira_email"]


def test_the_vault_must_be_as_strong_as_the_configuration_requires(
    filled: Path, tmp_path: Path, moto_endpoint: str, kms_key: str
) -> None:
    both = kms_settings(tmp_path, moto_endpoint, kms_key, require=("passphrase", "kms"))
    error = expect_refusal(filled, lambda: Vault.open(both, environ=ENV), RequireMismatchError)
    assert "run `importer secrets rotate --require passphrase --require kms`" in str(error)
    Vault.open(both, environ=ENV, check_require=False).rotate()
    assert Vault.open(both, environ=ENV).require == ("passphrase", "kms")


def test_rotation_never_drops_a_key_source_unless_told(
    tmp_path: Path, moto_endpoint: str, kms_key: str
) -> None:
    both = kms_settings(tmp_path, moto_endpoint, kms_key, require=("passphrase", "kms"))
    Vault.create(both, environ=ENV, scrypt=FAST)
    vault = Vault.open(both, environ=ENV)
    passphrase_only = kms_settings(tmp_path, moto_endpoint, kms_key, require=("passphrase",))
    rotate = Vault.open(passphrase_only, environ=ENV).rotate
    expect_refusal(both.path, rotate, VaultUsageError, names_file=False)
    vault.rotate(require=("kms",))
    assert Vault.open(kms_settings(tmp_path, moto_endpoint, kms_key), environ={}).require == ("kms",)


# --- two keys: passphrase and KMS -------------------------------------------------------------


@pytest.fixture
def two_key(tmp_path: Path, moto_endpoint: str, kms_key: str) -> VaultSettings:
    settings = kms_settings(tmp_path, moto_endpoint, kms_key, require=("passphrase", "kms"))
    fill(Vault.create(settings, environ=ENV, scrypt=FAST))
    return settings


def test_two_key_round_trip(two_key: VaultSettings) -> None:
    vault = Vault.open(two_key, environ=ENV)
    assert {n: vault.get(n).reveal() for n in CANARIES} == CANARIES
    assert json.loads(two_key.path.read_text())["kek"]["kms"]["sealed_nonce"]


def test_two_key_needs_the_passphrase(two_key: VaultSettings) -> None:
    expect_refusal(two_key.path, lambda: Vault.open(two_key, environ={}), PassphraseMissingError)
    bad = {ENV_PASSPHRASE: "wrong horse battery"}
    expect_refusal(two_key.path, lambda: Vault.open(two_key, environ=bad), WrongKeyError)


def test_two_key_needs_kms(two_key: VaultSettings, kms: Any, kms_key: str) -> None:
    kms.disable_key(KeyId=kms_key)
    expect_refusal(two_key.path, lambda: Vault.open(two_key, environ=ENV), KmsKeyDisabledError)


def test_two_key_blob_is_sealed_so_kms_access_alone_gets_nothing(two_key: VaultSettings, kms: Any) -> None:
    doc = json.loads(two_key.path.read_text())
    blob = base64.b64decode(doc["kek"]["kms"]["ciphertext_blob"])
    with pytest.raises(ClientError, match="InvalidCiphertext"):
        kms.decrypt(CiphertextBlob=blob, EncryptionContext=doc["kek"]["kms"]["encryption_context"])


def test_two_key_edited_to_claim_one_key_still_does_not_open(two_key: VaultSettings) -> None:
    """Neither key alone unwraps the data key: the KEK is HKDF over both."""
    original = two_key.path.read_bytes()
    passphrase_only = settings_for(two_key.path.parent.parent)

    def drop_kms(doc: dict[str, Any]) -> None:
        del doc["kek"]["kms"]
        doc["require"] = ["passphrase"]

    rewrite(two_key.path, drop_kms)
    expect_refusal(two_key.path, lambda: Vault.open(passphrase_only, environ=ENV), WrongKeyError)

    # KMS side, even with the blob unsealed by someone who also had the passphrase once
    two_key.path.write_bytes(original)
    doc = json.loads(original)
    salt = base64.b64decode(doc["kek"]["passphrase"]["salt"])
    kek_p = vault_mod._scrypt(PASS, vault_mod._PassKek(params=FAST, salt=salt))
    sealed = vault_mod._Box(
        nonce=base64.b64decode(doc["kek"]["kms"]["sealed_nonce"]),
        ciphertext=base64.b64decode(doc["kek"]["kms"]["ciphertext_blob"]),
    )
    blob = vault_mod._unseal(kek_p, sealed, vault_mod._aad(doc["vault_id"], "kms_blob"))

    def kms_only(doc: dict[str, Any]) -> None:
        del doc["kek"]["passphrase"]
        doc["require"] = ["kms"]
        doc["kek"]["kms"].update(sealed_nonce=None, ciphertext_blob=base64.b64encode(blob).decode())

    rewrite(two_key.path, kms_only)
    only_kms = replace(two_key, require=("kms",))
    expect_refusal(two_key.path, lambda: Vault.open(only_kms, environ={}), WrongKeyError)


def test_kms_vault_flipped_bytes_are_detected(tmp_path: Path, moto_endpoint: str, kms_key: str) -> None:
    settings = kms_settings(tmp_path, moto_endpoint, kms_key)
    fill(Vault.create(settings, environ={}))
    original = settings.path.read_bytes()
    for position in range(0, len(original), 11):
        damaged = bytearray(original)
        damaged[position] ^= 0x01
        settings.path.write_bytes(bytes(damaged))
        with pytest.raises(VaultError) as caught:
            Vault.open(settings, environ={})
        assert_no_canary(str(caught.value))


def test_kms_only_needs_no_passphrase_and_refuses_one(
    tmp_path: Path, moto_endpoint: str, kms_key: str
) -> None:
    settings = kms_settings(tmp_path, moto_endpoint, kms_key)
    with pytest.raises(VaultUsageError):
        Vault.create(settings, passphrase=PASS)
    assert Vault.create(settings, environ={}).require == ("kms",)
