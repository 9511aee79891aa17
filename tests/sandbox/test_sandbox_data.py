"""The data generator: deterministic, and varied enough to break naive code."""

from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Any

import pytest

from importer.sandbox.app import Sandbox
from importer.sandbox.data import DEVICE_FIELDS, MANAGED_FIELDS, USER_FIELDS, generate_tenant
from importer.sandbox.testing import http_session


def as_dicts(records: list[list[Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [dict(zip(fields, rec, strict=True)) for rec in records]


@pytest.fixture(scope="module")
def tenant() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str], dict[str, list[Any]]]:
    generated, _ = generate_tenant(3, users=2000, devices=1000)
    return (
        as_dicts(generated.users, USER_FIELDS),
        as_dicts(generated.devices, DEVICE_FIELDS),
        generated.owners,
        generated.managed,
    )


def test_the_same_seed_gives_the_same_tenant() -> None:
    one, _ = generate_tenant(5, users=50, devices=30)
    two, _ = generate_tenant(5, users=50, devices=30)
    other, _ = generate_tenant(6, users=50, devices=30)
    assert (one.users, one.devices, one.owners) == (two.users, two.devices, two.owners)
    assert one.users[0][0] != other.users[0][0]


def test_ids_are_guids_and_unique(tenant: Any) -> None:
    users, devices, _, managed = tenant
    ids = [u["id"] for u in users] + [d["id"] for d in devices] + [d["deviceId"] for d in devices]
    ids += [m[MANAGED_FIELDS.index("id")] for m in managed.values()]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 36 and i[14] == "4" for i in ids)


def test_users_mix_members_guests_disabled_and_missing_mail(tenant: Any) -> None:
    users = tenant[0]
    guests = [u for u in users if u["userType"] == "Guest"]
    assert guests
    assert all("#EXT#@contoso.onmicrosoft.com" in u["userPrincipalName"] for u in guests)
    assert all(u["mail"] and "@" in u["mail"] and "#EXT#" not in u["mail"] for u in guests)
    assert any(u["accountEnabled"] is False for u in users)
    assert any(u["mail"] is None for u in users)
    assert any(
        u["mail"]
        and u["mail"] != u["userPrincipalName"]
        and u["mail"].lower() == u["userPrincipalName"].lower()
        for u in users
    )
    assert any(u["givenName"] is None and u["userType"] == "Member" for u in users)  # rooms, service accounts


def test_names_cover_the_hard_cases(tenant: Any) -> None:
    names = [u["displayName"] for u in tenant[0]]
    bidi = {unicodedata.bidirectional(ch) for name in names for ch in name}
    assert "AL" in bidi  # Arabic
    assert "R" in bidi  # Hebrew
    assert any("'" in n for n in names)
    assert any('"' in n for n in names)
    assert any(any(unicodedata.east_asian_width(ch) == "W" for ch in n) for n in names)
    assert any(any(ord(ch) > 127 for ch in n) and n.isascii() is False for n in names)
    assert max(Counter(names).values()) > 1  # duplicate display names
    assert any("'" in u["userPrincipalName"] for u in tenant[0])


def test_users_carry_job_data_and_unique_employee_ids(tenant: Any) -> None:
    users = tenant[0]
    for field in ("jobTitle", "department", "officeLocation", "companyName", "employeeId", "createdDateTime"):
        assert any(u[field] for u in users), field
    employee_ids = [u["employeeId"] for u in users if u["employeeId"]]
    assert len(set(employee_ids)) == len(employee_ids)
    upns = [u["userPrincipalName"].lower() for u in users]
    assert len(set(upns)) == len(upns)


def test_devices_cover_platforms_trust_types_and_ownership(tenant: Any) -> None:
    users, devices, owners, managed = tenant
    systems = {d["operatingSystem"] for d in devices}
    assert {"Windows", "iOS", "Android"} <= systems
    assert systems & {"macOS", "MacMDM"}
    assert systems & {"Linux", "linux"}
    assert {d["trustType"] for d in devices} == {"AzureAd", "Workplace", "ServerAd"}
    for field in ("isCompliant", "isManaged", "accountEnabled", "deviceOwnership", "Manufacturer", "Model"):
        assert {d[field] for d in devices} - {None}, field
    assert any(d["accountEnabled"] is False for d in devices)
    assert all(d["approximateLastSignInDateTime"] and d["registrationDateTime"] for d in devices)
    assert 0 < len(owners) < len(devices)  # most devices have an owner, some none
    members = {u["id"] for u in users if u["userType"] == "Member"}
    assert set(owners.values()) <= members
    assert set(managed) <= {d["id"] for d in devices if d["isManaged"]}


def test_jira_accounts_follow_the_documented_rule(sb: Sandbox) -> None:
    if sb.assets is None:
        pytest.skip("the Assets service has not landed")
    assert sb.directory is not None
    users = {u["mail"]: u for u in sb.directory.dump("users")["value"] if u["mail"]}
    assert sb.jira_accounts
    for mail in sb.jira_accounts:
        user = users[mail]
        assert (user["userType"], user["accountEnabled"]) == ("Member", True)
        assert user["givenName"]
    eligible = [
        u for u in users.values() if u["userType"] == "Member" and u["accountEnabled"] and u["givenName"]
    ]
    assert len(sb.jira_accounts) >= 0.75 * len(eligible)


def test_one_or_two_mails_have_two_jira_accounts(sb: Sandbox) -> None:
    if sb.assets is None:
        pytest.skip("the Assets service has not landed")
    ambiguous = [mail for mail, ids in sb.jira_accounts.items() if len(ids) == 2]
    assert len(ambiguous) in (1, 2)
    with http_session(sb) as session:
        found = session.get(
            f"{sb.base_url}/rest/api/3/user/search",
            params={"query": ambiguous[0]},
            auth=(sb.jira_email, sb.jira_api_token),
        ).json()
    exact = {u["accountId"] for u in found if u.get("emailAddress", "").lower() == ambiguous[0].lower()}
    assert exact == set(sb.jira_accounts[ambiguous[0]])
