"""Parsing Assets JSON into values: ids as strings, kinds from type codes, defensive shapes."""

from __future__ import annotations

import pytest

from importer.assets.models import as_id, kind_of, parse_attribute, parse_object_type, parse_status

from .conftest import fixture, make_type


@pytest.mark.parametrize(
    ("type_code", "default", "kind"),
    [
        pytest.param(0, 0, "text", id="text"),
        pytest.param(0, 6, "datetime", id="datetime"),
        pytest.param(0, 11, "ipaddress", id="ip"),
        pytest.param(None, 10, "select", id="implied-default"),
        pytest.param(1, None, "reference", id="reference"),
        pytest.param(2, None, "user", id="user"),
        pytest.param(4, None, "group", id="group"),
        pytest.param(7, None, "status", id="status"),
        pytest.param(5, None, "other", id="version"),
        pytest.param(0, -1, "other", id="default-none"),
    ],
)
def test_kind_from_type_codes(type_code: int | None, default: int | None, kind: str) -> None:
    assert kind_of(type_code, default) == kind


def test_attribute_type_inferred_when_absent_and_ids_as_strings() -> None:
    city = next(a for a in fixture("objecttype_attributes_response.json") if a["name"] == "City")
    parsed = parse_attribute(city)
    assert (parsed.kind, parsed.type_code, parsed.reference_type_id, parsed.object_type_id) == (
        "reference",
        1,
        "24",
        "23",
    )
    dc = parse_attribute(
        {"id": 12, "name": "Owner", "type": "1", "referenceObjectTypeId": 3, "maximumCardinality": -1}
    )
    assert (dc.id, dc.kind, dc.reference_type_id, dc.multi) == ("12", "reference", "3", True)


def test_as_id_is_defensive() -> None:
    assert [as_id(v) for v in ("88", 88, " 7 ", None, True, 1.5, "")] == [
        "88",
        "88",
        "7",
        None,
        None,
        None,
        None,
    ]


def test_object_type_and_status() -> None:
    created = parse_object_type(fixture("objecttype_create_response.json"))
    assert (created.id, created.name, created.schema_id, created.icon_id) == ("23", "Office", "6", "13")
    assert parse_status({"id": 3, "name": "Closed", "category": "0"}).category == 0


def test_resolved_type_lookups() -> None:
    rtype = make_type()
    assert rtype.attribute_by_id("135") is rtype.key_attribute
    assert rtype.name_of("136") == "Name"
    assert rtype.attribute_by_id("999") is None
    with pytest.raises(KeyError, match="has no attribute 'Nope'"):
        rtype.attribute("Nope")
