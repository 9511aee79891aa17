"""Records: compact, immutable, merged field by field; 100,000 of them fit in little memory."""

from __future__ import annotations

import gc
import tracemalloc
import uuid

import pytest

from importer.graph.models import Fields, GraphRecord, RecordParser, merge_records


def test_fields_behave_like_a_read_only_mapping() -> None:
    """Fields compare equal to dicts, keep their order, and cannot be changed."""
    fields = Fields({"displayName": "A", "mail": None})
    assert fields == {"displayName": "A", "mail": None}
    assert list(fields) == ["displayName", "mail"]
    assert "mail" in fields
    assert "jobTitle" not in fields
    assert fields.get("jobTitle", "absent") == "absent"
    with pytest.raises(TypeError):
        fields["displayName"] = "B"  # type: ignore[index]
    assert Fields({"mail": None, "displayName": "A"}) == fields  # order does not matter
    assert hash(Fields({"mail": None, "displayName": "A"})) == hash(fields)
    assert len({GraphRecord(id="u", fields=fields), GraphRecord(id="u", fields=Fields(dict(fields)))}) == 1


def test_merge_keeps_fields_the_later_occurrence_did_not_send() -> None:
    """A partial update never blanks fields it did not send."""
    earlier = GraphRecord(id="u", fields=Fields({"displayName": "A", "department": "Sales"}))
    later = GraphRecord(id="u", fields=Fields({"displayName": "B", "jobTitle": "Lead"}))
    merged = merge_records(earlier, later)
    assert merged.fields == {"displayName": "B", "department": "Sales", "jobTitle": "Lead"}
    removed = GraphRecord(id="u", removed="deleted")
    assert merge_records(merged, removed) is removed
    assert merge_records(removed, later) is later


def test_parser_keeps_only_selected_fields_and_freezes_values() -> None:
    """Unselected fields are dropped; lists become tuples so records stay immutable."""
    parser = RecordParser(("id", "businessPhones", "displayName"))
    record = parser.parse({"id": "u", "displayName": "A", "businessPhones": ["1"], "mail": "a@x"})
    assert record is not None
    assert record.fields == {"displayName": "A", "businessPhones": ("1",)}
    assert parser.parse({"displayName": "no id"}) is None
    unknown = parser.parse({"id": "u", "@removed": {"reason": "somethingNew"}})
    assert unknown is not None
    assert unknown.removed == "changed"


def test_repeated_short_values_are_shared() -> None:
    """'Windows' on every device is stored once."""
    parser = RecordParser(("id", "operatingSystem"))
    a = parser.parse({"id": "1", "operatingSystem": "".join(["Win", "dows"])})
    b = parser.parse({"id": "2", "operatingSystem": "".join(["Wind", "ows"])})
    assert a is not None
    assert b is not None
    assert a.fields["operatingSystem"] is b.fields["operatingSystem"]


@pytest.mark.slow
def test_hundred_thousand_users_fit_comfortably() -> None:
    """100,000 parsed users with 8 fields take well under 100 MB (about 0.5 KB each)."""
    select = ("id", "displayName", "givenName", "surname", "mail", "userPrincipalName", "department",
              "accountEnabled", "userType")  # fmt: skip
    parser = RecordParser(select)
    gc.collect()
    tracemalloc.start()
    records = []
    for n in range(100_000):
        item = {
            "id": str(uuid.UUID(int=n)),
            "displayName": f"Person Number {n}",
            "givenName": f"Person{n}",
            "surname": f"Number{n}",
            "mail": f"person.number{n}@contoso.example",
            "userPrincipalName": f"person.number{n}@contoso.example",
            "department": f"Department {n % 40}",
            "accountEnabled": n % 7 != 0,
            "userType": "Member",
            "businessPhones": [],
        }
        record = parser.parse(item)
        assert record is not None
        records.append(record)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(records) == 100_000
    assert current < 100 * 1024 * 1024, f"{current / 1e6:.0f} MB"
    print(f"100k users: {current / 1e6:.1f} MB, {current / 100_000:.0f} bytes per record")
