"""Deterministic test data for the simulated tenant: users, devices, owners and Intune records.

``generate_tenant(seed, users=N, devices=M)`` always gives the same tenant for the same
arguments. Records are plain lists in the field order of ``USER_FIELDS`` / ``DEVICE_FIELDS`` /
``MANAGED_FIELDS`` (a list is ~5x smaller than a dict, which matters at 100,000 objects).

The mix is meant to break naive code: members and guests (``#EXT#`` UPNs), disabled accounts,
missing mail, mail differing from the UPN in case, accents, Arabic/Hebrew (right-to-left) and
CJK names, apostrophes and double quotes (``O'Brien``, ``Robert "Bobby" Smith``), duplicate
display names, service accounts without given name or surname, and devices of six platforms
with or without an owner and with or without Intune enrolment.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from importer.sandbox import pools
from importer.sandbox.tenant import seeded_uuid

__all__ = [
    "DEVICE_FIELDS",
    "INTUNE_MDM_APP_ID",
    "MANAGED_FIELDS",
    "REFERENCE_TIME",
    "USER_FIELDS",
    "DataGenerator",
    "GeneratedTenant",
    "format_time",
    "generate_tenant",
]

USER_FIELDS = (
    "id", "userPrincipalName", "displayName", "givenName", "surname", "mail", "jobTitle", "department",
    "officeLocation", "companyName", "employeeId", "employeeType", "accountEnabled", "userType",
    "createdDateTime", "businessPhones", "mobilePhone", "preferredLanguage", "usageLocation",
    "onPremisesSyncEnabled",
)  # fmt: skip
DEVICE_FIELDS = (
    "id", "deviceId", "displayName", "operatingSystem", "operatingSystemVersion", "trustType", "isCompliant",
    "isManaged", "accountEnabled", "approximateLastSignInDateTime", "registrationDateTime", "createdDateTime",
    "deviceOwnership", "Manufacturer", "Model", "deviceVersion", "profileType", "mdmAppId",
    "enrollmentProfileName", "onPremisesSyncEnabled",
)  # fmt: skip
MANAGED_FIELDS = (
    "id", "serialNumber", "imei", "wiFiMacAddress", "enrolledDateTime", "lastSyncDateTime", "complianceState",
    "isEncrypted", "totalStorageSpaceInBytes", "freeStorageSpaceInBytes", "managedDeviceOwnerType",
    "deviceEnrollmentType", "managementAgent", "isSupervised",
)  # fmt: skip
INTUNE_MDM_APP_ID = "0000000a-0000-0000-c000-000000000000"
REFERENCE_TIME = 1748736000  # 2025-06-01T00:00:00Z: generated dates lie before it
_U = {name: i for i, name in enumerate(USER_FIELDS)}
_D = {name: i for i, name in enumerate(DEVICE_FIELDS)}
_YEAR = 365 * 86400
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def format_time(epoch: float) -> str:
    """``2024-03-01T08:30:00Z``: the way Graph writes directory timestamps."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass(slots=True)
class GeneratedTenant:
    """The generator's output: records in creation order, owners and Intune records by device id."""

    users: list[list[Any]] = field(default_factory=list)
    devices: list[list[Any]] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)  # device id -> user id
    managed: dict[str, list[Any]] = field(default_factory=dict)  # device id -> MANAGED_FIELDS record


class DataGenerator:
    """Makes users and devices; remembers used UPNs and employee ids so later additions stay unique."""

    def __init__(self) -> None:
        self._upns: set[str] = set()
        self._next_suffix: dict[str, int] = {}
        self._employee_ids = 0
        self._last_name: tuple[str, str, str, str] | None = None
        self._count = 0

    def user(self, rng: random.Random, *, created: float | None = None) -> list[Any]:
        """One user record (member ~92%, guest ~8%)."""
        self._count += 1
        roll = rng.random()
        if roll < 0.08:
            return self._guest(rng, created)
        if roll < 0.10:
            return self._service_account(rng, created)
        return self._member(rng, created)

    def _name(self, rng: random.Random) -> tuple[str, str, str, str]:
        if self._last_name is not None and self._count % 25 == 4:
            return self._last_name  # a duplicate display name, on purpose
        script = rng.random()
        if script < 0.05:
            given, surname = rng.choice(pools.ARABIC_GIVEN), rng.choice(pools.ARABIC_SURNAMES)
        elif script < 0.09:
            given, surname = rng.choice(pools.HEBREW_GIVEN), rng.choice(pools.HEBREW_SURNAMES)
        elif script < 0.14:
            given, surname = rng.choice(pools.CJK_GIVEN), rng.choice(pools.CJK_SURNAMES)
        else:
            given, surname = rng.choice(pools.LATIN_GIVEN), rng.choice(pools.LATIN_SURNAMES)
        self._last_name = (given[0], surname[0], given[1], surname[1])
        return self._last_name

    def _unique(self, key: str, make: Callable[[str], str]) -> tuple[str, str]:
        """The first UPN ``make(suffix)`` not taken yet (suffix "", "2", "3", ...), and its suffix."""
        n = self._next_suffix.get(key, 1)
        suffix = "" if n == 1 else str(n)
        candidate = make(suffix)
        while candidate.lower() in self._upns:
            n += 1
            suffix = str(n)
            candidate = make(suffix)
        self._next_suffix[key] = n + 1
        self._upns.add(candidate.lower())
        return candidate, suffix

    def _base(self, rng: random.Random, created: float | None) -> list[Any]:
        rec: list[Any] = [None] * len(USER_FIELDS)
        rec[_U["id"]] = seeded_uuid(rng)
        rec[_U["accountEnabled"]] = True
        rec[_U["businessPhones"]] = []
        when = created if created is not None else REFERENCE_TIME - rng.randrange(9 * _YEAR)
        rec[_U["createdDateTime"]] = format_time(when)
        return rec

    def _member(self, rng: random.Random, created: float | None) -> list[Any]:
        given, surname, given_ascii, surname_ascii = self._name(rng)
        rec = self._base(rng, created)
        cjk = any(given == g for g, _ in pools.CJK_GIVEN)
        display = f"{surname}{given}" if cjk else f"{given} {surname}"
        if rng.random() < 0.02:
            display = f'{given} "{rng.choice(pools.NICKNAMES)}" {surname}'
        domain = "contoso.onmicrosoft.com" if rng.random() < 0.05 else "contoso.com"
        local = f"{given_ascii}.{surname_ascii}".replace(" ", "")
        upn, _ = self._unique(f"{local}@{domain}", lambda n: f"{local}{n}@{domain}")
        roll = rng.random()
        mail: str | None = upn
        if roll < 0.04:
            mail = None
        elif roll < 0.14:
            local, _, dom = upn.partition("@")
            mail = ".".join(part[:1].upper() + part[1:] for part in local.split(".")) + "@" + dom
        self._employee_ids += 1
        rec[_U["userPrincipalName"]] = upn
        rec[_U["displayName"]] = display
        rec[_U["givenName"]] = given
        rec[_U["surname"]] = surname
        rec[_U["mail"]] = mail
        rec[_U["jobTitle"]] = rng.choice(pools.JOB_TITLES) if rng.random() < 0.9 else None
        rec[_U["department"]] = rng.choice(pools.DEPARTMENTS) if rng.random() < 0.92 else None
        rec[_U["officeLocation"]] = rng.choice(pools.OFFICES) if rng.random() < 0.85 else None
        rec[_U["companyName"]] = rng.choice(pools.COMPANIES) if rng.random() < 0.85 else None
        rec[_U["employeeId"]] = f"{self._employee_ids:06d}" if rng.random() < 0.9 else None
        rec[_U["employeeType"]] = rng.choice(("Employee", "Employee", "Employee", "Contractor", None))
        rec[_U["accountEnabled"]] = rng.random() >= 0.07
        rec[_U["userType"]] = "Member"
        if rng.random() < 0.4:
            rec[_U["businessPhones"]] = [f"+1 425 555 {rng.randrange(10000):04d}"]
        rec[_U["mobilePhone"]] = f"+1 206 555 {rng.randrange(10000):04d}" if rng.random() < 0.2 else None
        rec[_U["preferredLanguage"]] = rng.choice(pools.LANGUAGES) if rng.random() < 0.75 else None
        rec[_U["usageLocation"]] = rng.choice(pools.USAGE_LOCATIONS) if rng.random() < 0.9 else None
        rec[_U["onPremisesSyncEnabled"]] = True if rng.random() < 0.3 else None
        return rec

    def _guest(self, rng: random.Random, created: float | None) -> list[Any]:
        given = rng.choice(pools.LATIN_GIVEN)
        surname = rng.choice(pools.LATIN_SURNAMES)
        external = rng.choice(pools.GUEST_DOMAINS)
        local = f"{given[1]}.{surname[1]}".replace(" ", "")
        upn, n = self._unique(
            f"{local}_{external}", lambda n: f"{local}{n}_{external}#EXT#@contoso.onmicrosoft.com"
        )
        rec = self._base(rng, created)
        rec[_U["userPrincipalName"]] = upn
        rec[_U["displayName"]] = (
            f"{given[0]} {surname[0]}" if rng.random() < 0.8 else f"{local}{n}@{external}"
        )
        rec[_U["givenName"]] = given[0] if rng.random() < 0.6 else None
        rec[_U["surname"]] = surname[0] if rng.random() < 0.6 else None
        rec[_U["mail"]] = f"{local}{n}@{external}"
        rec[_U["userType"]] = "Guest"
        rec[_U["accountEnabled"]] = rng.random() >= 0.03
        return rec

    def _service_account(self, rng: random.Random, created: float | None) -> list[Any]:
        name = rng.choice(pools.SERVICE_ACCOUNTS)
        local = "".join(ch for ch in name.lower() if ch.isascii() and ch.isalnum())
        upn, _ = self._unique(local, lambda n: f"{local}{n}@contoso.com")
        rec = self._base(rng, created)
        rec[_U["userPrincipalName"]] = upn
        rec[_U["displayName"]] = name
        rec[_U["mail"]] = upn if rng.random() < 0.7 else None
        rec[_U["userType"]] = "Member"
        rec[_U["companyName"]] = "Contoso Ltd."
        return rec

    def device(
        self, rng: random.Random, owner: Sequence[Any] | None, *, created: float | None = None
    ) -> tuple[list[Any], list[Any] | None]:
        """One device record and, when Intune manages it, its Intune record."""
        roll, acc = rng.random(), 0.0
        platform = pools.PLATFORMS[-1]
        for candidate in pools.PLATFORMS:
            acc += candidate[3]
            if roll < acc:
                platform = candidate
                break
        os_name, versions, hardware, _ = platform
        maker, model = rng.choice(hardware)
        given = owner[_U["givenName"]] if owner is not None else None
        if os_name == "Windows":
            trust = rng.choices(("AzureAd", "ServerAd", "Workplace"), (55, 30, 15))[0]
            prefix = rng.choice(("DESKTOP-", "LAPTOP-", "CONTOSO-WS-"))
            name = prefix + "".join(rng.choice(_ALNUM) for _ in range(7))
        elif os_name == "Linux":
            trust = "Workplace"
            name = f"{rng.choice(('ubuntu-dev', 'fedora-ws', 'build-agent'))}-{rng.randrange(1000):03d}"
            os_name = rng.choice(("Linux", "linux"))
        else:
            trust = "AzureAd" if os_name == "macOS" and rng.random() < 0.1 else "Workplace"
            kind = {"macOS": "MacBook Pro", "iOS": "iPhone", "IPad": "iPad", "Android": model}[os_name]
            name = f"{given}'s {kind}" if given and rng.random() < 0.5 else kind
        managed = os_name not in ("Linux", "linux") and rng.random() < (0.9 if trust != "Workplace" else 0.6)
        if managed and os_name == "macOS":
            os_name = "MacMDM"
        registered = created if created is not None else REFERENCE_TIME - rng.randrange(6 * _YEAR)
        last_sign_in = registered + rng.random() * max(REFERENCE_TIME - registered, 3600)
        rec: list[Any] = [None] * len(DEVICE_FIELDS)
        rec[_D["id"]] = seeded_uuid(rng)
        rec[_D["deviceId"]] = seeded_uuid(rng)
        rec[_D["displayName"]] = name
        rec[_D["operatingSystem"]] = os_name
        rec[_D["operatingSystemVersion"]] = rng.choice(versions)
        rec[_D["trustType"]] = trust
        rec[_D["isCompliant"]] = (rng.random() < 0.85) if managed else None
        rec[_D["isManaged"]] = True if managed else None
        rec[_D["accountEnabled"]] = rng.random() >= 0.04
        rec[_D["approximateLastSignInDateTime"]] = format_time(last_sign_in)
        rec[_D["registrationDateTime"]] = format_time(registered)
        rec[_D["createdDateTime"]] = format_time(registered)
        rec[_D["deviceOwnership"]] = ("Company" if trust != "Workplace" else "Personal") if managed else None
        rec[_D["Manufacturer"]] = (maker or None) if managed or rng.random() < 0.5 else None
        rec[_D["Model"]] = (model or None) if rec[_D["Manufacturer"]] else None
        rec[_D["deviceVersion"]] = 2 if os_name == "Windows" else 1
        rec[_D["profileType"]] = "RegisteredDevice"
        rec[_D["mdmAppId"]] = INTUNE_MDM_APP_ID if managed else None
        rec[_D["enrollmentProfileName"]] = (
            "Corporate iOS" if managed and os_name == "iOS" and rng.random() < 0.5 else None
        )
        rec[_D["onPremisesSyncEnabled"]] = True if trust == "ServerAd" else None
        intune = self._managed(rng, rec, registered) if managed else None
        return rec, intune

    @staticmethod
    def _managed(rng: random.Random, device: list[Any], enrolled: float) -> list[Any]:
        os_name = device[_D["operatingSystem"]]
        phone = os_name in ("iOS", "Android")
        total = rng.choice((64, 128, 256, 512)) * 1024**3
        windows = os_name == "Windows"
        enrollment = {
            "Windows": "windowsAzureADJoin"
            if device[_D["trustType"]] == "AzureAd"
            else "windowsCoManagement",
            "MacMDM": "appleBulkWithUser",
            "iOS": "appleBulkWithUser",
            "IPad": "appleBulkWithUser",
            "Android": "androidEnterpriseFullyManaged",
        }.get(os_name, "userEnrollment")
        return [
            seeded_uuid(rng),
            "".join(rng.choice(_ALNUM) for _ in range(10 if windows else 12)),
            "".join(rng.choice("0123456789") for _ in range(15)) if phone else "",
            "".join(rng.choice("0123456789ABCDEF") for _ in range(12)),
            format_time(enrolled + 600),
            format_time(REFERENCE_TIME - rng.randrange(30 * 86400)),
            "compliant" if device[_D["isCompliant"]] else "noncompliant",
            rng.random() < 0.9,
            total,
            int(total * rng.uniform(0.05, 0.8)),
            "company" if device[_D["deviceOwnership"]] == "Company" else "personal",
            enrollment,
            "configurationManagerClientMdm" if device[_D["trustType"]] == "ServerAd" else "mdm",
            os_name in ("iOS", "IPad") and rng.random() < 0.7,
        ]

    @staticmethod
    def job_change(rng: random.Random, user: Sequence[Any], *, clear_title: bool) -> tuple[str | None, str]:
        """A new (jobTitle, department) different from the current one; title None when asked."""
        title = (
            None if clear_title else rng.choice([t for t in pools.JOB_TITLES if t != user[_U["jobTitle"]]])
        )
        department = rng.choice([d for d in pools.DEPARTMENTS if d != user[_U["department"]]])
        return title, department

    @staticmethod
    def os_update(rng: random.Random, version: str | None) -> str:
        """A newer operating system version string."""
        parts = (version or "1").split(".")
        if parts[-1].isdigit():
            parts[-1] = str(int(parts[-1]) + rng.randrange(1, 50))
        else:
            parts.append("1")
        return ".".join(parts)


def generate_tenant(seed: int, *, users: int, devices: int) -> tuple[GeneratedTenant, DataGenerator]:
    """Generate ``users`` users and ``devices`` devices from ``seed`` (same arguments, same tenant)."""
    rng = random.Random(f"importer-sandbox-data:{seed}")
    generator = DataGenerator()
    out = GeneratedTenant()
    for _ in range(users):
        out.users.append(generator.user(rng))
    owners_pool = [u for u in out.users if u[_U["userType"]] == "Member" and u[_U["givenName"]] is not None]
    for _ in range(devices):
        owner = rng.choice(owners_pool) if owners_pool and rng.random() < 0.85 else None
        device, intune = generator.device(rng, owner)
        out.devices.append(device)
        if owner is not None:
            out.owners[device[0]] = owner[0]
        if intune is not None:
            out.managed[device[0]] = intune
    return out, generator
