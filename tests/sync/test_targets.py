"""Targets: account look-ups when Jira's account listing cannot be paged."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from importer.errors import PagingLoopError
from importer.mapping import AccountEmail
from importer.sync._target import Targets


class _Resolver:
    def pending(self, keys: set[str]) -> int:
        return len(keys)

    def prefetch(self) -> int:
        raise PagingLoopError("/rest/api/3/users/search")


def test_an_account_listing_that_cannot_be_paged_falls_back_to_lookups_with_a_warning() -> None:
    resolver = _Resolver()
    rt: Any = SimpleNamespace(
        accounts=lambda cache: resolver,
        state=SimpleNamespace(get_accounts=lambda keys: {}),
        pseudonyms=SimpleNamespace(pseudonym=lambda value, kind: f"{kind}:{value}"),
    )
    work: Any = SimpleNamespace(
        raw={f"u{i}": {"Atlassian": AccountEmail(f"p{i}@example.com")} for i in range(30)}, skipped=set()
    )
    warnings: list[str] = []
    targets = Targets(rt, schema=None, by_name={}, warnings=warnings)  # type: ignore[arg-type]
    targets.open_accounts([work])
    assert targets.accounts is resolver  # the run goes on, resolving emails one by one
    [warning] = warnings
    assert "account listing could not be paged" in warning
    assert "looked up one by one" in warning
