"""A daemon serving several installations pseudonymizes each one's people under its own pepper."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from importer.anonymize import Anonymize, set_pseudonymizer
from importer.privacy import LOG_KIND, Pseudonymizer


@pytest.fixture
def two_installations() -> Iterator[tuple[Pseudonymizer, Pseudonymizer]]:
    north, south = Pseudonymizer(b"n" * 32), Pseudonymizer(b"s" * 32)
    set_pseudonymizer(north, instance="north")
    set_pseudonymizer(south, instance="south")
    yield north, south
    set_pseudonymizer(None, instance="north")
    set_pseudonymizer(None, instance="south")
    set_pseudonymizer(None)


def test_events_bound_to_an_installation_use_its_pepper(
    two_installations: tuple[Pseudonymizer, Pseudonymizer],
) -> None:
    north, south = two_installations
    for name, own in (("north", north), ("south", south)):
        with structlog.contextvars.bound_contextvars(instance=name):
            event = Anonymize()(None, "info", {"event": "user_synced", "upn": "ann@contoso.com"})
        assert event["upn"] == own.pseudonym("ann@contoso.com", kind=LOG_KIND)
    assert north.pseudonym("ann@contoso.com", kind=LOG_KIND) != south.pseudonym(
        "ann@contoso.com", kind=LOG_KIND
    )
