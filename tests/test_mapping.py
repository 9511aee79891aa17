"""The mapping: transforms, templates, filters, references, user emails; total on any input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from importer.config import Settings, parse_settings
from importer.mapping import SOURCE_FIELDS, AccountEmail, CompiledEntry, Ref, compile_mapping, map_record

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.yaml"


def settings_with(attributes: dict[str, Any], *, source: str = "users", **entry: Any) -> Settings:
    doc = yaml.safe_load(EXAMPLE.read_text())
    users = doc["mapping"]["object_types"][0]
    devices = doc["mapping"]["object_types"][1]
    target = users if source == "users" else devices
    target["attributes"] = {"Name": "displayName", **attributes}
    target.update(entry)
    return parse_settings(yaml.safe_dump(doc))


def compiled(attributes: dict[str, Any], *, source: str = "users", **entry: Any) -> CompiledEntry:
    return compile_mapping(settings_with(attributes, source=source, **entry))[source]


def values(entry: CompiledEntry, fields: dict[str, Any], owner: str | None = None) -> dict[str, object]:
    desired = map_record(entry, "g1", fields, owner=owner)
    assert desired is not None
    return dict(desired.values)


@pytest.mark.parametrize(
    ("spec", "fields", "expected"),
    [
        pytest.param(
            {"from": "mail", "transform": ["lower"]},
            {"mail": "Ann.Lee@Contoso.COM"},
            "ann.lee@contoso.com",
            id="lower",
        ),
        pytest.param({"from": "jobTitle", "transform": ["upper"]}, {"jobTitle": "dev"}, "DEV", id="upper"),
        pytest.param(
            {"from": "jobTitle", "transform": ["strip"]}, {"jobTitle": "  dev  "}, "dev", id="strip"
        ),
        pytest.param(
            {"from": "createdDateTime", "transform": ["date"]},
            {"createdDateTime": "2024-02-29T23:59:59Z"},
            "2024-02-29",
            id="date",
        ),
        pytest.param(
            {"from": "createdDateTime", "transform": ["date"]},
            {"createdDateTime": "not a date"},
            None,
            id="date-garbage-is-null",
        ),
        pytest.param(
            {"from": "userType", "transform": [{"map": {"Member": "Staff", "Guest": "External"}}]},
            {"userType": "Guest"},
            "External",
            id="map",
        ),
        pytest.param(
            {"from": "userType", "transform": [{"map": {"Member": "Staff"}}]},
            {"userType": "Other"},
            "Other",
            id="map-unmapped-kept",
        ),
        pytest.param(
            {"from": "accountEnabled", "transform": [{"map": {"true": "Enabled", "false": "Disabled"}}]},
            {"accountEnabled": False},
            "Disabled",
            id="map-bool",
        ),
        pytest.param(
            {"from": "displayName", "transform": [{"truncate": 5}]},
            {"displayName": "Annabelle"},
            "Anna…",
            id="truncate",
        ),
        pytest.param(
            {"from": "displayName", "transform": [{"truncate": 4}]},
            {"displayName": "👩‍💻👩‍💻👩‍💻"},
            "👩‍💻…",  # the first cluster (3 code points) fits; a cluster is never split
            id="truncate-grapheme",
        ),
        pytest.param(
            {"template": "{givenName} {surname}"},
            {"givenName": "Ann", "surname": None},
            "Ann",
            id="template-partial",
        ),
        pytest.param({"template": "{givenName} {surname}"}, {}, None, id="template-empty-is-null"),
        pytest.param({"from": "jobTitle", "default": "(none)"}, {"jobTitle": None}, "(none)", id="default"),
        pytest.param(
            {"from": "jobTitle", "default": "(none)"}, {"jobTitle": "   "}, "(none)", id="blank-is-null"
        ),
        pytest.param(
            {"from": "businessPhones"}, {"businessPhones": ["+1 1", "", "+1 2"]}, ("+1 1", "+1 2"), id="list"
        ),
        pytest.param({"from": "displayName"}, {"displayName": "Cafe\u0301"}, "Café", id="nfc"),
    ],
)
def test_transforms(spec: dict[str, Any], fields: dict[str, Any], expected: object) -> None:
    assert values(compiled({"X": spec}), fields)["X"] == expected


def test_user_attributes_carry_the_email_to_resolve() -> None:
    entry = compiled({"Jira User": {"from": "mail", "user": True}})
    assert values(entry, {"mail": "ann@contoso.com"})["Jira User"] == AccountEmail("ann@contoso.com")
    assert values(entry, {"mail": None})["Jira User"] is None


def test_a_device_owner_becomes_a_reference_to_the_user_object() -> None:
    entry = compiled({"Owner": {"reference": "users"}}, source="devices")
    assert values(entry, {}, owner="u9")["Owner"] == Ref("users", "u9")
    assert values(entry, {}, owner=None)["Owner"] is None
    assert entry.uses_owner


def test_the_attributes_taken_from_the_owner_are_marked_as_such() -> None:
    """What a run leaves alone when a device's owner could not be read."""
    entry = compiled(
        {"Owner": {"reference": "users"}, "Owner id": {"from": "owner"}, "OS": "operatingSystem"},
        source="devices",
    )
    assert {a.name for a in entry.attributes if a.from_owner} == {"Owner", "Owner id"}


def test_filters_exclude_records() -> None:
    entry = compiled(
        {}, filter=['userType == "Member"', "accountEnabled != false", 'department in ["IT", "HR"]']
    )
    assert (
        map_record(entry, "g1", {"userType": "Member", "accountEnabled": True, "department": "IT"})
        is not None
    )
    assert map_record(entry, "g1", {"userType": "Guest", "accountEnabled": True, "department": "IT"}) is None
    assert (
        map_record(entry, "g1", {"userType": "Member", "accountEnabled": False, "department": "IT"}) is None
    )
    assert map_record(entry, "g1", {"userType": "Member", "department": "Sales"}) is None


def test_select_holds_exactly_the_fields_the_mapping_reads() -> None:
    entry = compiled(
        {"Full Name": {"template": "{givenName} {surname}"}, "Mail": "mail"},
        filter=["accountEnabled == true"],
    )
    assert entry.select == ("id", "accountEnabled", "displayName", "givenName", "mail", "surname")


_any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.lists(st.text(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)


@given(record=st.fixed_dictionaries({}, optional=dict.fromkeys(SOURCE_FIELDS["users"], _any_value)))
def test_the_default_user_mapping_never_raises_on_any_value(record: dict[str, Any]) -> None:
    entry = compile_mapping(parse_settings(EXAMPLE.read_text()))["users"]
    desired = map_record(entry, "g1", record)
    assert desired is None or set(desired.values) == {a.name for a in entry.attributes}


@given(text=st.text())
def test_every_transform_is_total_on_any_string(text: str) -> None:
    entry = compiled(
        {
            "A": {"from": "displayName", "transform": ["lower", "strip", {"truncate": 10}]},
            "B": {"from": "jobTitle", "transform": [{"map": {"x": "y"}}, "upper"]},
            "C": {"from": "createdDateTime", "transform": ["date"]},
            "D": {"template": "{givenName} – {surname}"},
            "E": {"from": "mail", "user": True},
        }
    )
    fields = {
        "displayName": text,
        "jobTitle": text,
        "createdDateTime": text,
        "givenName": text,
        "surname": text,
        "mail": text,
    }
    out = values(entry, fields)
    assert out["A"] is None or len(str(out["A"])) <= 10
