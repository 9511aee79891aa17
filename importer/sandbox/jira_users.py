"""The simulated Jira user directory behind ``GET /rest/api/3/user/search`` and Assets User values.

Matching follows the real endpoint's description: the query is matched against the *prefix* of
the display name and the email address. The sandbox matches the prefix of the whole display
name, of each of its words, of the whole email address and of each part of its local part
(split on ``. _ - +``), case-insensitively: ``ann`` finds Anna and Annabel, and an exact email
also finds ``anna@contoso.com.au``, so a caller must still filter for the exact address itself.
A user whose email is hidden (Atlassian profile visibility) is still found by it, but the
response carries no ``emailAddress``.
"""

from __future__ import annotations

import bisect
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["JiraUser", "JiraUserDirectory"]

_NAMESPACE = uuid.UUID("6f1e3c55-2a7b-4f0e-9a8e-5b7f0f3d9c21")
_LOCAL_SPLIT = re.compile(r"[._\-+]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class JiraUser:
    """One Atlassian account."""

    account_id: str
    email: str
    display_name: str
    active: bool = True
    email_visible: bool = True


class JiraUserDirectory:
    """Users by accountId, with a sorted prefix index for search (rebuilt lazily after changes)."""

    def __init__(self, *, seed: int = 0) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._users: dict[str, JiraUser] = {}
        self._by_email: dict[str, list[str]] = {}
        self._index: list[tuple[str, str]] = []
        self._dirty = False

    def add(self, email: str, display_name: str, *, active: bool = True, email_visible: bool = True) -> str:
        """Add an account; its accountId derives from the seed, the email and how many came before.

        Calling again with the same email adds *another* account (ids stay deterministic), so a
        search by that email finds both, as with a person who has two Atlassian accounts.
        """
        key = email.strip().lower()
        with self._lock:
            previous = self._by_email.setdefault(key, [])
            suffix = f":{len(previous)}" if previous else ""
            account_id = "557058:" + str(uuid.uuid5(_NAMESPACE, f"{self._seed}:{key}{suffix}"))
            self._users[account_id] = JiraUser(
                account_id=account_id,
                email=email.strip(),
                display_name=display_name,
                active=active,
                email_visible=email_visible,
            )
            previous.append(account_id)
            self._dirty = True
        return account_id

    def get(self, account_id: str) -> JiraUser | None:
        """The user with this accountId, or None."""
        with self._lock:
            return self._users.get(account_id)

    def all(self) -> list[JiraUser]:
        """Every account, in the order they were added (``GET /rest/api/3/users/search``)."""
        with self._lock:
            return list(self._users.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)

    def search(self, query: str) -> list[JiraUser]:
        """Users whose display name or email matches ``query`` by prefix, sorted by display name."""
        needle = query.strip().lower()
        if not needle:
            return []
        with self._lock:
            if self._dirty:
                self._index = sorted(
                    (token, user.account_id) for user in self._users.values() for token in _tokens(user)
                )
                self._dirty = False
            start = bisect.bisect_left(self._index, (needle, ""))
            found: set[str] = set()
            for token, account_id in self._index[start:]:
                if not token.startswith(needle):
                    break
                found.add(account_id)
            users = [self._users[account_id] for account_id in found]
        return sorted(users, key=lambda user: (user.display_name.casefold(), user.account_id))

    def render(self, user: JiraUser, base_url: str) -> dict[str, Any]:
        """The user as ``/rest/api/3/user/search`` returns it."""
        body: dict[str, Any] = {
            "self": f"{base_url}/rest/api/3/user?accountId={user.account_id}",
            "accountId": user.account_id,
            "accountType": "atlassian",
        }
        if user.email_visible:
            body["emailAddress"] = user.email
        body.update(
            {
                "avatarUrls": {
                    size: f"{base_url}/avatar/{user.account_id}?s={size.split('x')[0]}"
                    for size in ("48x48", "24x24", "16x16", "32x32")
                },
                "displayName": user.display_name,
                "active": user.active,
                "timeZone": "Etc/UTC",
                "locale": "en_US",
            }
        )
        return body

    def render_assets_user(self, account_id: str, base_url: str) -> dict[str, Any]:
        """The ``user`` member of an Assets User attribute value."""
        user = self.get(account_id)
        body: dict[str, Any] = {
            "avatarUrl": f"{base_url}/avatar/{account_id}?s=48",
            "displayName": user.display_name if user else account_id,
            "key": account_id,
            "self": f"{base_url}/rest/api/3/user?accountId={account_id}",
            "isDeleted": user is None,
        }
        if user is not None and user.email_visible:
            body["emailAddress"] = user.email
        return body


def _tokens(user: JiraUser) -> set[str]:
    name = user.display_name.lower()
    email = user.email.lower()
    local = email.split("@", 1)[0]
    tokens = {name, email, local, *name.split(), *_LOCAL_SPLIT.split(local)}
    tokens.discard("")
    return tokens
