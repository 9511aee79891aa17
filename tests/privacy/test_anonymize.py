"""The log anonymizer: what a reader of any log line can and cannot learn."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import pytest
import structlog
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from importer import logs
from importer.cli import main
from importer.logs import Anonymize, register_secret, scrub_text
from importer.privacy import LOG_KIND, PSEUDONYM_RE, Pseudonymizer
from tests.privacy.conftest import Captured

GUID = "8c2b1a40-3f1e-4a52-9f3e-1d2c3b4a5f60"


def pid(p: Pseudonymizer, value: str) -> str:
    return p.pseudonym(value, kind=LOG_KIND)


# -- personal keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "upn", "mail", "email", "name", "display_name", "displayName", "given_name", "surname", "user",
        "owner", "employee_id", "ip", "user_id", "source_id", "userPrincipalName", "label", "account_id",
    ],
)  # fmt: skip
def test_a_personal_key_holds_the_same_pseudonym_whatever_its_name(keyed: Pseudonymizer, key: str) -> None:
    event = Anonymize()(None, "info", {"event": "x", key: "Ann.Smith@Contoso.com"})
    assert event[key] == pid(keyed, "ann.smith@contoso.com")


def test_numbers_lists_and_mappings_under_personal_keys_are_pseudonymized(keyed: Pseudonymizer) -> None:
    event = Anonymize()(
        None,
        "info",
        {"event": "x", "employee_id": 4711, "users": ["a@x.com", "b@x.com"], "owner": {"upn": "c@x.com"}},
    )
    assert event["employee_id"] == pid(keyed, "4711")
    assert event["users"] == [pid(keyed, "a@x.com"), pid(keyed, "b@x.com")]
    assert event["owner"] == {"upn": pid(keyed, "c@x.com")}


def test_none_booleans_and_existing_pseudonyms_are_left_as_they_are(keyed: Pseudonymizer) -> None:
    existing = pid(keyed, "someone@x.com")
    event = Anonymize()(None, "info", {"event": "x", "user": None, "owner": True, "person": existing})
    assert (event["user"], event["owner"], event["person"]) == (None, True, existing)


def test_before_the_vault_is_open_personal_values_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    from importer import anonymize

    monkeypatch.setattr(anonymize, "_pseudonymizer", None)
    event = Anonymize()(None, "info", {"event": "mail ann@x.com", "upn": "ann@x.com"})
    assert event == {"event": "mail pid:unkeyed", "upn": "pid:unkeyed"}


# -- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "token", "secret", "password", "authorization", "Authorization", "api_token", "client_secret",
        "access_token", "refresh_token", "passphrase", "pepper", "cookie", "x_delta_token",
        "graph_client_secret", "db_password", "private_key",
    ],
)  # fmt: skip
def test_secret_keys_are_redacted(keyed: Pseudonymizer, key: str) -> None:
    assert Anonymize()(None, "info", {"event": "x", key: "s3cr3t-value"})[key] == "[redacted]"


def test_secret_keys_inside_nested_values_are_redacted(keyed: Pseudonymizer) -> None:
    headers = {"Authorization": "Bearer abc", "Accept": "json"}
    event = Anonymize()(None, "info", {"event": "x", "headers": headers})
    assert event["headers"] == {"Authorization": "[redacted]", "Accept": "json"}


def test_every_registered_secret_is_redacted_in_any_text(keyed: Pseudonymizer) -> None:
    register_secret("Zx9~tenant.secret/value+1")
    text = scrub_text("body client_secret=Zx9~tenant.secret/value+1 and Zx9~tenant.secret%2Fvalue%2B1 end")
    assert "Zx9" not in text
    assert text.count("[redacted]") == 2


# -- free text ----------------------------------------------------------------------------------

FREE_TEXT = [
    pytest.param("mail ann.smith@contoso.com.", "ann.smith@contoso.com", id="email-end-of-sentence"),
    pytest.param("user o'brien@contoso.com failed", "o'brien@contoso.com", id="apostrophe"),
    pytest.param("KeyError('ann@contoso.com')", "ann@contoso.com", id="quoted-repr"),
    pytest.param(
        "guest ann_fabrikam.com#EXT#@contoso.onmicrosoft.com x",
        "ann_fabrikam.com#EXT#@contoso.onmicrosoft.com",
        id="guest-upn",
    ),
    pytest.param("GET /v1.0/users/ann%40contoso.com/x", "ann@contoso.com", id="url-encoded"),
    pytest.param("zoë.ñúñez@exämple.example rejected", "zoë.ñúñez@exämple.example", id="non-ascii"),
    pytest.param("jose\u0301@contoso.com rejected", "josé@contoso.com", id="nfd"),
    pytest.param("'bad.canary@nodot' is not a valid Email", "bad.canary@nodot", id="dotless-domain"),
    pytest.param("MAIL ANN@CONTOSO.COM", "ann@contoso.com", id="upper-case"),
    pytest.param(f"object {GUID} failed", GUID, id="guid"),
    pytest.param("from 10.1.2.3.", "10.1.2.3", id="ipv4"),
    pytest.param("from 2001:db8::7 port 443", "2001:db8::7", id="ipv6"),
    pytest.param("wifi aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff", id="mac"),
]


@pytest.mark.parametrize(("text", "person"), FREE_TEXT)
def test_personal_values_in_free_text_become_their_pseudonym(
    keyed: Pseudonymizer, text: str, person: str
) -> None:
    scrubbed = scrub_text(text)
    assert pid(keyed, person) in scrubbed
    for part in re.split(r"[@#.:'%\s]+", person):
        if len(part) > 3:
            assert part.casefold() not in scrubbed.casefold(), part


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        pytest.param("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop", id="bearer"),
        pytest.param("Basic YWxpY2U6c2VjcmV0LXZhbHVl", "YWxpY2U6c2VjcmV0LXZhbHVl", id="basic"),
        pytest.param("jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJl", "eyJzdWIiOiJhbm4", id="jwt"),
        pytest.param("https://svc:hunter22@proxy.example/x", "hunter22", id="url-credentials"),
        pytest.param("https://graph.example/v1.0/users?$filter=mail eq 'x'", "$filter", id="query-string"),
        pytest.param("url: /v1.0/users/delta?$deltatoken=abc123def", "abc123def", id="relative-query"),
    ],
)
def test_tokens_credentials_and_query_strings_are_removed(keyed: Pseudonymizer, text: str, gone: str) -> None:
    assert gone not in scrub_text(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("retry at Wed, 21 Oct 2015 07:28:00 GMT", id="time-of-day"),
        pytest.param("OS 10.0.19045.3803 on 127.0.0.1 and ::1", id="versions-and-loopback"),
        pytest.param("plan 9971581c25f7e539 run 4dfafe3a0d0a, 42 objects", id="hashes-and-counts"),
        pytest.param(f"request-id: {GUID}", id="request-id"),
        pytest.param(f"correlation_id={GUID}", id="correlation-id"),
    ],
)
def test_what_names_no_one_is_kept(keyed: Pseudonymizer, text: str) -> None:
    assert scrub_text(text) == text


def test_request_ids_under_their_own_keys_are_kept(keyed: Pseudonymizer) -> None:
    event = Anonymize()(None, "info", {"event": "x", "request_id": GUID, "correlation_id": GUID, "id": GUID})
    assert (event["request_id"], event["correlation_id"]) == (GUID, GUID)
    assert event["id"] == pid(keyed, GUID)


@pytest.mark.parametrize(
    "char", ["\n", "\r", "\x1b", "\x00", "\u202e", "\u2066", "\u2028", "\u200f", "\x85"], ids=repr
)
def test_control_characters_and_bidi_overrides_are_escaped(keyed: Pseudonymizer, char: str) -> None:
    assert char not in scrub_text(f"name{char}forged")
    assert f"\\u{ord(char):04x}" in scrub_text(f"name{char}forged")


@settings(max_examples=200, deadline=None)
@given(
    local=st.from_regex(r"[a-z0-9][a-z0-9._'+\-]{0,15}[a-z0-9]", fullmatch=True),
    domain=st.from_regex(r"[a-z0-9àáâäçèéêëìíîïñòóöùúûüß]{1,10}(\.[a-z]{2,6}){0,2}", fullmatch=True),
    before=st.sampled_from(["", " ", "'", '"', "(", "<", "=", "mail "]),
    after=st.sampled_from(["", " ", ".", "'", '"', ")", ">", ",", ": failed"]),
)
def test_no_address_survives_scrubbing(local: str, domain: str, before: str, after: str) -> None:
    from importer import anonymize

    old = anonymize._pseudonymizer
    anonymize._pseudonymizer = Pseudonymizer(b"k" * 32)
    try:
        address = f"{local}@{domain}"
        assert address not in scrub_text(f"{before}{address}{after}")
    finally:
        anonymize._pseudonymizer = old


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("ann@contoso.com")


def test_the_processor_never_raises_and_never_lets_a_value_through(keyed: Pseudonymizer) -> None:
    event = Anonymize()(None, "info", {"event": "x", "thing": _Unprintable(), "upn": "ann@contoso.com"})
    assert event == {"event": "log_event_withheld", "error_type": "RuntimeError"}


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=12),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=6,
    )
)
def test_the_processor_accepts_any_event(event: dict[str, Any]) -> None:
    out = Anonymize()(None, "info", {"event": "x", **event})
    assert "event" in out


# -- through the configured logging ---------------------------------------------------------------


def test_structlog_events_are_anonymized_before_rendering(captured: Captured, keyed: Pseudonymizer) -> None:
    structlog.get_logger("importer.test").info(
        "user ann@contoso.com synced", upn="ann@contoso.com", api_token="s3cr3t", department="R&D"
    )
    line = captured.last()
    assert line["event"] == f"user {pid(keyed, 'ann@contoso.com')} synced"
    assert (line["upn"], line["api_token"], line["department"]) == (
        pid(keyed, "ann@contoso.com"),
        "[redacted]",
        "R&D",
    )


CANARY_NAME = "Zoë Kanarie qxk9"
CANARY_MAIL = "zoe.kanarie.qxk9@contoso.com"


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("Display Name", id="spaces"),
        pytest.param("display name", id="lower-case-spaces"),
        pytest.param("Given Name", id="given-name"),
        pytest.param("user.name", id="dots"),
        pytest.param("_upn", id="leading-underscore"),
        pytest.param("_display_name", id="leading-underscore-snake"),
    ],
)
def test_personal_keys_written_any_way_never_reach_the_log_in_clear(
    captured: Captured, keyed: Pseudonymizer, key: str
) -> None:
    structlog.get_logger("importer.test").info("object_updated", **{key: CANARY_NAME})
    assert "qxk9" not in captured.text()
    assert captured.last()[key] == pid(keyed, CANARY_NAME)


def test_keys_with_a_leading_underscore_are_anonymized_like_any_other(
    captured: Captured, keyed: Pseudonymizer
) -> None:
    structlog.get_logger("importer.test").info(
        "debug_dump",
        _detail=f"mail {CANARY_MAIL} from 10.9.8.7",
        _diff={"Display Name": (None, CANARY_NAME), "Email": (None, CANARY_MAIL)},
        _api_token="s3cr3t-qxk9-token",
    )
    text = captured.text()
    assert "qxk9" not in text
    assert "10.9.8.7" not in text
    line = captured.last()
    assert line["_detail"] == f"mail {pid(keyed, CANARY_MAIL)} from {pid(keyed, '10.9.8.7')}"
    assert line["_api_token"] == "[redacted]"
    assert line["_diff"]["Display Name"] == [None, pid(keyed, CANARY_NAME)]


def test_stdlib_loggers_pass_the_same_chain(captured: Captured, keyed: Pseudonymizer) -> None:
    logging.getLogger("urllib3.connectionpool").warning(
        "Retrying https://api.example/users/ann%%40contoso.com?x=1 from %s", "10.9.8.7"
    )
    text = captured.text()
    assert "ann" not in text
    assert "10.9.8.7" not in text
    assert pid(keyed, "ann@contoso.com") in text


def test_exceptions_logged_with_exc_info_are_scrubbed(captured: Captured, keyed: Pseudonymizer) -> None:
    register_secret("the-client-secret-42")
    try:
        raise ValueError("cannot map ann@contoso.com with the-client-secret-42")
    except ValueError:
        structlog.get_logger("importer.test").exception("mapping_failed")
        logging.getLogger("some.library").error("library failed", exc_info=True)
    text = captured.text()
    assert "ann@contoso.com" not in text
    assert "the-client-secret-42" not in text
    lines = captured.lines()
    assert all("Traceback" in line["exception"] for line in lines[-2:])
    assert all(pid(keyed, "ann@contoso.com") in line["exception"] for line in lines[-2:])


@pytest.mark.parametrize("where", ["event", "department"])
def test_a_value_cannot_forge_a_line_on_the_console(console: Any, where: str) -> None:
    forged = "R&D\n2025-01-01 [error    ] forged_event \u202eevil"
    log = structlog.get_logger("importer.test")
    if where == "event":
        log.warning(forged)
    else:
        log.warning("synced", department=forged)
    output = console()
    assert output.count("\n") == 1, output
    assert "\u202e" not in output


def test_the_cli_final_error_message_is_scrubbed(tmp_path: Any, keyed: Pseudonymizer) -> None:
    missing = tmp_path / "ann.smith@contoso.com" / "config.yaml"
    result = CliRunner().invoke(main, ["--config", str(missing), "config", "check"])
    assert result.exit_code == 4
    assert "ann.smith@contoso.com" not in result.stderr
    assert pid(keyed, "ann.smith@contoso.com") in result.stderr


def test_uncaught_exceptions_are_printed_scrubbed(
    keyed: Pseudonymizer, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        raise KeyError("ann@contoso.com")
    except KeyError as exc:
        logs._scrubbed_excepthook(KeyError, exc, exc.__traceback__)
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "ann@contoso.com" not in err
    assert pid(keyed, "ann@contoso.com") in err


def test_configure_logging_installs_the_scrubbing_excepthook(keyed: Pseudonymizer) -> None:
    old = sys.excepthook
    sys.excepthook = sys.__excepthook__
    try:
        logs.configure_logging(level="warning")
        assert sys.excepthook is logs._scrubbed_excepthook
    finally:
        sys.excepthook = old


def test_pseudonyms_look_like_pseudonyms(keyed: Pseudonymizer) -> None:
    assert PSEUDONYM_RE.fullmatch(pid(keyed, "ann@contoso.com"))
