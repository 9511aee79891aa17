"""The sandbox's AQL parser: the subset, its quoting rules, and what it refuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.sandbox.aql import And, AqlSyntaxError, Comparison, Or, parse_aql, quote_aql


def test_simple_comparison_keeps_field_spelling_and_value() -> None:
    assert parse_aql("objectTypeId = 23") == Comparison("objectTypeId", "=", ("23",))


def test_keywords_are_case_insensitive() -> None:
    node = parse_aql('objecttypeid = 1 and "Name" in ("a", "b") Or Key like X')
    assert node == Or(
        (
            And((Comparison("objecttypeid", "=", ("1",)), Comparison("Name", "IN", ("a", "b")))),
            Comparison("Key", "LIKE", ("X",)),
        )
    )


def test_and_binds_tighter_than_or_and_parentheses_regroup() -> None:
    assert parse_aql("a = 1 OR b = 2 AND c = 3") == Or(
        (Comparison("a", "=", ("1",)), And((Comparison("b", "=", ("2",)), Comparison("c", "=", ("3",)))))
    )
    assert parse_aql("(a = 1 OR b = 2) AND c = 3") == And(
        (Or((Comparison("a", "=", ("1",)), Comparison("b", "=", ("2",)))), Comparison("c", "=", ("3",)))
    )


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        pytest.param(
            '"Say \\"hi\\"" = "C:\\\\temp"', 'Say "hi"', "C:\\temp", id="escaped-quote-and-backslash"
        ),
        pytest.param('Name = "O\'Brien"', "Name", "O'Brien", id="single-quote-inside-double-quotes"),
        pytest.param('Name = "two\nlines"', "Name", "two\nlines", id="literal-newline"),
        pytest.param('"Gerät Größe" = "Zoë 東京 🚀"', "Gerät Größe", "Zoë 東京 🚀", id="non-ascii"),
        pytest.param('Name = ""', "Name", "", id="empty-string"),
        pytest.param("Name=Alpha", "Name", "Alpha", id="no-spaces-unquoted"),
        pytest.param('"Entra Object Id" = 4f2b-99', "Entra Object Id", "4f2b-99", id="unquoted-guid-ish"),
    ],
)
def test_quoted_names_and_values_are_unescaped(text: str, field: str, value: str) -> None:
    assert parse_aql(text) == Comparison(field, "=", (value,))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("Name", id="no-operator"),
        pytest.param("Name =", id="no-value"),
        pytest.param('Name = "unterminated', id="unterminated-string"),
        pytest.param('Name = "ends with backslash\\', id="dangling-backslash"),
        pytest.param('Name = "bad \\n escape"', id="unsupported-escape"),
        pytest.param("Name = 'single'", id="single-quoted-value"),
        pytest.param("Name != x", id="not-equal-unsupported"),
        pytest.param("Name > 3", id="greater-unsupported"),
        pytest.param("Name NOT IN (a)", id="not-in-unsupported"),
        pytest.param("Owner = currentUser()", id="function"),
        pytest.param("(a = 1", id="unclosed-paren"),
        pytest.param("a = 1)", id="stray-paren"),
        pytest.param("a = 1 AND", id="dangling-and"),
        pytest.param("a = 1 b = 2", id="missing-and"),
        pytest.param("Name IN ()", id="empty-in"),
        pytest.param("Name IN (a b)", id="in-without-comma"),
        pytest.param("Name IN a", id="in-without-parens"),
        pytest.param("AND = 1", id="keyword-as-field"),
        pytest.param('"Owner".Name = x', id="dot-notation"),
    ],
)
def test_malformed_or_unsupported_aql_is_refused(text: str) -> None:
    with pytest.raises(AqlSyntaxError):
        parse_aql(text)


def test_error_messages_name_the_position() -> None:
    with pytest.raises(AqlSyntaxError, match="position 5"):
        parse_aql("Name 'x'")


@given(st.text())
def test_quote_aql_round_trips_any_value(value: str) -> None:
    """Whatever a value holds, quoting it for AQL and parsing gives it back unchanged."""
    assert parse_aql(f'"Name" = {quote_aql(value)}') == Comparison("Name", "=", (value,))


@given(st.text(min_size=1), st.lists(st.text(), min_size=1, max_size=5))
def test_quoted_attribute_names_and_in_lists_round_trip(name: str, values: list[str]) -> None:
    """Attribute names are quoted the same way; IN lists keep order and duplicates."""
    text = f"{quote_aql(name)} IN ({', '.join(quote_aql(v) for v in values)})"
    assert parse_aql(text) == Comparison(name, "IN", tuple(values))
