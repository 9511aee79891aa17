"""AQL quoting: every value goes through one function and cannot break out of its quotes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.assets.aql import aql_in, aql_quote, aql_type


def _unquote(text: str) -> str:
    """Read one AQL string literal back (what a server's lexer does)."""
    assert text[0] == '"'
    assert text[-1] == '"'
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            out.append(body[i + 1])
            i += 2
            continue
        assert ch != '"', "an unescaped quote would end the literal early"
        out.append(ch)
        i += 1
    return "".join(out)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        pytest.param("plain", '"plain"', id="plain"),
        pytest.param('15" Screen', '"15\\" Screen"', id="double-quote"),
        pytest.param("C:\\temp\\", '"C:\\\\temp\\\\"', id="backslashes"),
        pytest.param("O'Brien", '"O\'Brien"', id="single-quote"),
        pytest.param("two\nlines", '"two\nlines"', id="newline"),
        pytest.param("Zoë 東京 🚀", '"Zoë 東京 🚀"', id="non-ascii"),
        pytest.param('\\"', '"\\\\\\""', id="backslash-then-quote"),
        pytest.param("", '""', id="empty"),
    ],
)
def test_aql_quote(value: str, quoted: str) -> None:
    assert aql_quote(value) == quoted
    assert _unquote(quoted) == value


@given(st.text())
def test_any_value_round_trips_and_stays_inside_its_quotes(value: str) -> None:
    assert _unquote(aql_quote(value)) == value


def test_in_expression_quotes_the_attribute_and_every_value() -> None:
    assert aql_in("23", 'Entra "Object" ID', ["a", 'b"c']) == (
        'objectTypeId = 23 AND "Entra \\"Object\\" ID" IN ("a", "b\\"c")'
    )


@pytest.mark.parametrize("bad", ["23 OR 1=1", "", "²", "-1"])
def test_type_id_must_be_numeric(bad: str) -> None:
    with pytest.raises(ValueError, match="numeric"):
        aql_type(bad)
