"""Values compare like with like: normalize (desired), decode (read) and encode (write) per kind."""

from __future__ import annotations

import unicodedata
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.assets.models import KINDS, AttributeKind, NormValue
from importer.assets.values import TEXT_LIMIT, decode, encode, normalize, truncate_text

from .conftest import attr, fixture

TEXT_KINDS: tuple[AttributeKind, ...] = (
    "text",
    "textarea",
    "url",
    "email",
    "select",
    "group",
    "user",
    "reference",
    "status",
)


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        pytest.param("text", "Ada  ", "Ada", id="text-trailing-space"),
        pytest.param("text", "Jose\u0301", "José", id="text-nfd-to-nfc"),
        pytest.param("text", "", None, id="text-empty-is-none"),
        pytest.param("text", "   ", None, id="text-blank-is-none"),
        pytest.param("text", 42, "42", id="text-from-number"),
        pytest.param("textarea", "line 1\nline 2\n", "line 1\nline 2", id="textarea"),
        pytest.param("url", "https://x.test/a ", "https://x.test/a", id="url"),
        pytest.param("email", "Ada@Contoso.test ", "Ada@Contoso.test", id="email-keeps-case"),
        pytest.param("integer", "42", 42, id="integer-from-string"),
        pytest.param("integer", " -7 ", -7, id="integer-negative"),
        pytest.param("integer", 3.0, 3, id="integer-from-whole-float"),
        pytest.param("integer", "1e3", 1000, id="integer-exponent"),
        pytest.param("double", "2.5", 2.5, id="double-from-string"),
        pytest.param("double", 2, 2.0, id="double-from-int"),
        pytest.param("boolean", True, True, id="bool-true"),
        pytest.param("boolean", "true", True, id="bool-string"),
        pytest.param("boolean", "True", True, id="bool-capitalised"),
        pytest.param("boolean", "FALSE", False, id="bool-upper-false"),
        pytest.param("date", "2024-02-29", "2024-02-29", id="date"),
        pytest.param("date", date(2024, 2, 29), "2024-02-29", id="date-object"),
        pytest.param("date", "2024-02-29T23:30:00-02:00", "2024-03-01", id="date-from-datetime-utc"),
        pytest.param("time", "09:05", "09:05:00", id="time-short"),
        pytest.param("time", time(9, 5, 7, 500), "09:05:07", id="time-object"),
        pytest.param("datetime", "2021-02-16T20:04:41.527Z", "2021-02-16T20:04:41Z", id="dt-fraction-z"),
        pytest.param("datetime", "2021-02-16T21:04:41+01:00", "2021-02-16T20:04:41Z", id="dt-offset"),
        pytest.param("datetime", "2021-02-16T20:04:41.527+0000", "2021-02-16T20:04:41Z", id="dt-java-offset"),
        pytest.param("datetime", "2021-02-16 20:04:41", "2021-02-16T20:04:41Z", id="dt-naive-is-utc"),
        pytest.param("datetime", "2021-02-16", "2021-02-16T00:00:00Z", id="dt-date-only"),
        pytest.param(
            "datetime",
            datetime(2021, 2, 16, 22, 4, 41, tzinfo=timezone(timedelta(hours=2))),
            "2021-02-16T20:04:41Z",
            id="dt-object",
        ),
        pytest.param("select", "Tier 1", "Tier 1", id="select"),
        pytest.param("ipaddress", "10.0.0.1 ", "10.0.0.1", id="ipv4"),
        pytest.param("ipaddress", "2001:DB8:0:0:0:0:0:1", "2001:db8::1", id="ipv6-canonical"),
        pytest.param("reference", 87, "87", id="reference-int"),
        pytest.param("reference", "87", "87", id="reference-str"),
        pytest.param("user", "557058:9c18-aa", "557058:9c18-aa", id="user-account-id"),
        pytest.param("status", 7, "7", id="status-int"),
        pytest.param("group", "jira-admins ", "jira-admins", id="group"),
        pytest.param("integer", None, None, id="none-stays-none"),
    ],
)
def test_normalize_per_kind(kind: AttributeKind, given: object, expected: NormValue) -> None:
    """Each kind has one canonical form; equal meanings give equal values."""
    assert normalize(attr("A", kind), given) == expected


@pytest.mark.parametrize(
    ("kind", "given"),
    [
        pytest.param("integer", "forty", id="integer-word"),
        pytest.param("integer", "2.5", id="integer-fraction"),
        pytest.param("integer", True, id="integer-bool"),
        pytest.param("double", "NaN", id="double-nan"),
        pytest.param("double", "inf", id="double-inf"),
        pytest.param("boolean", "yes", id="bool-yes"),
        pytest.param("boolean", 1, id="bool-int"),
        pytest.param("date", "31/12/2024", id="date-format"),
        pytest.param("datetime", "yesterday", id="datetime-word"),
        pytest.param("time", "25:00", id="time-out-of-range"),
        pytest.param("ipaddress", "10.0.0.300", id="ip-bad"),
    ],
)
def test_typed_kinds_raise_naming_the_attribute(kind: AttributeKind, given: object) -> None:
    """An unconvertible value names the attribute and its kind, never the value."""
    with pytest.raises(ValueError, match=r"attribute 'Hire Date'") as info:
        normalize(attr("Hire Date", kind), given)
    assert kind in str(info.value)
    if isinstance(given, str) and len(given) > 3:
        assert given not in str(info.value)


def test_multi_values_are_a_sorted_tuple_without_duplicates() -> None:
    a = attr("Tags", "select", multi=True)
    assert normalize(a, ["b", "a ", "b"]) == ("a", "b")
    assert normalize(a, "only") == ("only",)
    assert normalize(a, []) is None
    assert encode(a, ("a", "b")) == [{"value": "a"}, {"value": "b"}]
    assert decode(a, [{"value": "b"}, {"value": "a"}]) == ("a", "b")


def test_single_valued_attribute_refuses_several_values() -> None:
    with pytest.raises(ValueError, match="'Owner' holds one value"):
        normalize(attr("Owner", "reference"), ["1", "2"])
    assert normalize(attr("Owner", "reference"), ["1"]) == "1"


def test_select_takes_the_canonical_spelling_of_an_option() -> None:
    a = attr("Tier", "select", options=("Tier 1", "Tier 2"))
    assert normalize(a, "tier 2") == "Tier 2"
    assert normalize(a, "Tier 9") == "Tier 9"  # unknown options are the server's to reject


def test_text_is_truncated_on_a_grapheme_boundary_and_counted() -> None:
    """255 is a hard limit: cut before a whole grapheme, end with "…", count (not log) the cut."""
    family = "👨\u200d👩\u200d👧"  # one grapheme, five code points, eight UTF-16 units
    value = "x" * 250 + family + "tail"
    counts: Counter[str] = Counter()
    result = normalize(attr("Display Name", "text"), value, truncations=counts)
    assert isinstance(result, str)
    assert result == "x" * 250 + "…"
    assert counts == Counter({"Display Name": 1})
    assert normalize(attr("Display Name", "text"), "x" * 255, truncations=counts) == "x" * 255
    assert counts["Display Name"] == 1
    # textarea is not cut
    assert normalize(attr("Notes", "textarea"), "y" * 300) == "y" * 300


def test_truncation_keeps_combining_marks_with_their_letter() -> None:
    text = "e\u0301" * 200  # NFD é: NFC first makes it one code point per letter
    cut, was_cut = truncate_text(unicodedata.normalize("NFC", text) + "é" * 100)
    assert was_cut
    assert len(cut) <= TEXT_LIMIT
    assert not unicodedata.combining(cut[0])
    cut2, _ = truncate_text("a" * 253 + "e\u0301\u0301" + "z")
    assert cut2.endswith("…")
    assert "\u0301" not in cut2  # the accented cluster did not fit and was dropped whole


@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        pytest.param(
            "reference",
            [
                {
                    "referencedObject": {"id": "87", "objectKey": "ITSM-87"},
                    "displayValue": "Sydney",
                    "searchValue": "ITSM-87",
                    "referencedType": True,
                }
            ],
            "87",
            id="reference-referencedObject",
        ),
        pytest.param("reference", [{"value": "87", "displayValue": "Sydney"}], "87", id="reference-value"),
        pytest.param(
            "reference",
            [{"referencedObject": {"id": 87}, "displayValue": "Sydney"}],
            "87",
            id="reference-dc-int",
        ),
        pytest.param(
            "status",
            [{"status": {"id": "2", "name": "Active", "category": 1}, "displayValue": "Active"}],
            "2",
            id="status-object",
        ),
        pytest.param(
            "status", [{"value": None, "searchValue": "2", "displayValue": "Active"}], "2", id="status-search"
        ),
        pytest.param("user", [{"value": "557058:abc", "displayValue": "Ada"}], "557058:abc", id="user-value"),
        pytest.param(
            "user", [{"user": {"key": "557058:abc"}, "displayValue": "Ada"}], "557058:abc", id="user-key"
        ),
        pytest.param(
            "group",
            [{"value": None, "searchValue": "jira-admins", "displayValue": "jira-admins"}],
            "jira-admins",
            id="group-search-value",
        ),
        pytest.param("boolean", [{"value": "true", "displayValue": "true"}], True, id="bool"),
        pytest.param("integer", [{"value": "12", "displayValue": "12"}], 12, id="integer"),
        pytest.param(
            "datetime",
            [{"value": "2021-02-16T20:04:41.527Z", "displayValue": "16/Feb/21 8:04 PM"}],
            "2021-02-16T20:04:41Z",
            id="datetime",
        ),
        pytest.param("text", [], None, id="no-values"),
        pytest.param(
            "integer", [{"value": "n/a", "displayValue": "n/a"}], "n/a", id="unreadable-kept-as-text"
        ),
    ],
)
def test_decode_reads_every_shape(
    kind: AttributeKind, values: list[dict[str, Any]], expected: NormValue
) -> None:
    """Read values become the same canonical form as desired ones; odd values never fail a read."""
    assert decode(attr("A", kind), values) == expected


def test_decode_spec_example_values() -> None:
    """The AQL page from the spec: the label, the datetime and the reference decode cleanly."""
    page = fixture("object_aql_response.json")
    by_id = {a["objectTypeAttributeId"]: a["objectAttributeValues"] for a in page["values"][0]["attributes"]}
    assert decode(attr("Name", "text"), by_id["135"]) == "SYD-1"
    assert decode(attr("Created", "datetime"), by_id["136"]) == "2021-02-16T20:04:41Z"
    assert decode(attr("City", "reference"), by_id["144"]) == "87"


@pytest.mark.parametrize(
    ("kind", "value", "wire"),
    [
        pytest.param("boolean", True, "true", id="bool"),
        pytest.param("integer", 5, "5", id="int"),
        pytest.param("double", 1e20, "100000000000000000000", id="double-no-exponent"),
        pytest.param("double", 0.1, "0.1", id="double"),
        pytest.param("reference", "87", "87", id="reference-id"),
        pytest.param("datetime", "2021-02-16T20:04:41Z", "2021-02-16T20:04:41Z", id="datetime-iso"),
    ],
)
def test_encode_writes_strings(kind: AttributeKind, value: NormValue, wire: str) -> None:
    assert encode(attr("A", kind), value) == [{"value": wire}]


def test_encode_none_clears() -> None:
    assert encode(attr("A", "text"), None) == []


# -- properties -------------------------------------------------------------------------------

_SAFE_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=400)
_VALUES: dict[AttributeKind, st.SearchStrategy[Any]] = {
    "text": _SAFE_TEXT,
    "textarea": _SAFE_TEXT,
    "url": _SAFE_TEXT,
    "email": _SAFE_TEXT,
    "select": _SAFE_TEXT,
    "group": _SAFE_TEXT,
    "user": _SAFE_TEXT,
    "status": st.integers(1, 10**6),
    "reference": st.integers(1, 10**9).map(str),
    "integer": st.integers(-(2**53), 2**53) | st.integers(-(10**6), 10**6).map(str),
    "double": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-1000, 1000),
    "boolean": st.booleans() | st.sampled_from(["true", "True", "false", "FALSE"]),
    "date": st.dates().map(lambda d: d.isoformat()) | st.dates(),
    "time": st.times(),
    "datetime": st.datetimes(
        timezones=st.just(UTC)
        | st.none()
        | st.builds(lambda h: timezone(timedelta(hours=h)), st.integers(-12, 12))
    )
    | st.datetimes().map(lambda d: d.isoformat() + "Z"),
    "ipaddress": st.ip_addresses().map(str),
}


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=150, deadline=None)
@given(data=st.data(), multi=st.booleans())
def test_round_trip_is_identity(kind: AttributeKind, data: st.DataObject, multi: bool) -> None:
    """decode(encode(normalize(x))) == normalize(x) for every kind, single- and multi-valued."""
    a = attr("A", kind, multi=multi)
    strategy = _VALUES[kind]
    raw = data.draw(st.lists(strategy, max_size=4) if multi else strategy)
    try:
        value = normalize(a, raw)
    except ValueError:
        assume_out_of_range = kind == "datetime"  # years before 1 or after 9999 after moving to UTC
        assert assume_out_of_range
        return
    wire = encode(a, value)
    assert all(isinstance(v["value"], str) for v in wire)
    echoed = [{"value": v["value"], "displayValue": v["value"], "searchValue": v["value"]} for v in wire]
    assert decode(a, echoed) == value
    assert normalize(a, value) == value  # idempotent


@pytest.mark.parametrize("kind", TEXT_KINDS)
@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(exclude_categories=()), max_size=600))
def test_text_kinds_never_raise_on_any_string(kind: AttributeKind, text: str) -> None:
    """Any Unicode string (surrogates included) is accepted by a text kind, within the limit."""
    counts: Counter[str] = Counter()
    value = normalize(attr("A", kind), text, truncations=counts)
    assert value is None or isinstance(value, str)
    if kind == "text" and isinstance(value, str):
        assert len(value.encode("utf-16-le", "surrogatepass")) // 2 <= TEXT_LIMIT


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none()))
def test_typed_kinds_raise_only_value_error(value: object) -> None:
    """Whatever arrives, a typed kind converts it or raises ValueError naming the attribute."""
    for kind in ("integer", "double", "boolean", "date", "time", "datetime", "ipaddress"):
        message = ""
        try:
            normalize(attr("Typed", kind), value)
        except ValueError as exc:
            message = str(exc)
        assert not message or "'Typed'" in message
