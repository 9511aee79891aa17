"""Pseudonyms: keyed, stable for one person, unlinkable without the pepper."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.privacy import ACCOUNT_KIND, LOG_KIND, PSEUDONYM_RE, Pseudonymizer, account_key, pepper_bytes

PEPPER = b"0123456789abcdef0123456789abcdef"


def test_the_same_person_gets_the_same_pseudonym_however_written() -> None:
    p = Pseudonymizer(PEPPER)
    forms = ["Ann.Smith@Contoso.com", "ann.smith@contoso.com", "  ANN.SMITH@CONTOSO.COM\n"]
    assert len({p(f) for f in forms}) == 1
    assert p("Zoë@x.com") == p("Zoe\u0308@x.com")  # NFC and NFD spell one name


def test_another_pepper_gives_another_pseudonym() -> None:
    assert Pseudonymizer(PEPPER)("ann@contoso.com") != Pseudonymizer(PEPPER[::-1])("ann@contoso.com")


def test_kinds_keep_log_pseudonyms_apart_from_cache_keys() -> None:
    p = Pseudonymizer(PEPPER)
    assert p.pseudonym("ann@contoso.com", kind=LOG_KIND) == p("ann@contoso.com")
    assert account_key(p, "ann@contoso.com") == p.pseudonym("ann@contoso.com", kind=ACCOUNT_KIND)
    assert account_key(p, "ann@contoso.com") != p("ann@contoso.com")


@given(st.text(min_size=1, max_size=80))
def test_a_pseudonym_reveals_no_plain_hash_of_the_value(value: str) -> None:
    pid = Pseudonymizer(PEPPER)(value)
    assert PSEUDONYM_RE.fullmatch(pid)
    for digest in (hashlib.sha256(value.encode()).hexdigest(), hashlib.md5(value.encode()).hexdigest()):  # noqa: S324
        assert digest[:8] not in pid


def test_a_short_pepper_is_refused_and_the_pseudonymizer_does_not_show_it() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Pseudonymizer(b"short")
    assert repr(Pseudonymizer(PEPPER)) == "Pseudonymizer(***)"


def test_the_pepper_is_read_as_base64_or_else_as_text() -> None:
    assert pepper_bytes(base64.b64encode(PEPPER).decode()) == PEPPER
    assert pepper_bytes("not base64 at all!") == b"not base64 at all!"
