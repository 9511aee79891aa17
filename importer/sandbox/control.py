"""The sandbox's control API under ``/_sandbox/`` (tests, demo and benchmarks; never the importer).

| route | what it does |
|---|---|
| ``GET /_sandbox/info`` | the connection details (``Sandbox.info()``) |
| ``POST /_sandbox/mutate`` | change the directory (counts per kind, optional ``seed``); ids per kind |
| ``GET``/``POST /_sandbox/faults`` | read / set fault knobs (``service``: graph, assets or null for both) |
| ``GET /_sandbox/stats`` | request counts by service, method, route template, status; Assets object counts |
| ``POST /_sandbox/stats/reset`` | zero the request counts |
| ``GET``/``POST /_sandbox/tenant`` | read / change tenant settings, advance the clock, expire delta tokens |
| ``GET /_sandbox/graph/users`` / ``devices`` / ``managedDevices`` | every object with all stored properties |

Errors are 400 ``{"error": "..."}``. ``/_sandbox/assets/...`` belongs to the Assets service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from importer.sandbox.base import SandboxRequest, SandboxResponse, json_error
from importer.sandbox.directory import Directory, MutationError
from importer.sandbox.faults import Faults, FaultsError
from importer.sandbox.intune import managed_item
from importer.sandbox.stats import RequestStats
from importer.sandbox.tenant import SettingsError, SimClock, TenantSettings

__all__ = ["ControlService"]

_Assets = Any  # importer.sandbox.assets.AssetsService when present (imported lazily by app.py)


class ControlService:
    """Answers ``/_sandbox/...`` (except ``/_sandbox/assets/...``)."""

    name = "control"

    def __init__(
        self,
        *,
        directory: Directory,
        settings: TenantSettings,
        clock: SimClock,
        faults: Faults,
        stats: RequestStats,
        assets: _Assets | None,
        info: Callable[[], dict[str, Any]],
    ) -> None:
        self._dir = directory
        self._settings = settings
        self._clock = clock
        self._faults = faults
        self._stats = stats
        self._assets = assets
        self._info = info

    def handle(self, request: SandboxRequest) -> SandboxResponse | None:
        """Answer a control route; None for other paths."""
        path, method = request.path.rstrip("/"), request.method
        if not path.startswith("/_sandbox") or path.startswith("/_sandbox/assets"):
            return None
        route = path
        try:
            body = request.json() if request.body else {}
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            result = self._route(method, path, body)
        except (ValueError, MutationError, FaultsError, SettingsError) as exc:
            return json_error(400, {"error": str(exc)}, route=route)
        if result is None:
            return json_error(404, {"error": f"no control route {method} {path}"}, route=route)
        return SandboxResponse(status=200, body=result, route=route)

    def _route(self, method: str, path: str, body: dict[str, Any]) -> Any:
        if method == "GET" and path in ("/_sandbox", "/_sandbox/info"):
            return self._info()
        if method == "POST" and path == "/_sandbox/mutate":
            return self.mutate(body)
        if path == "/_sandbox/faults":
            return self.set_faults(body) if method == "POST" else self._faults.as_dict()
        if method == "GET" and path == "/_sandbox/stats":
            return self.stats()
        if method == "POST" and path == "/_sandbox/stats/reset":
            self.reset_stats()
            return {"ok": True}
        if path == "/_sandbox/tenant":
            if method == "POST":
                return self.set_tenant(body)
            return self._settings.as_dict(self._clock)
        if method == "GET" and path in ("/_sandbox/graph/users", "/_sandbox/graph/devices"):
            return self._dir.dump(path.rsplit("/", 1)[1])
        if method == "GET" and path == "/_sandbox/graph/managedDevices":
            with self._dir.lock:
                items = (managed_item(self._dir, d) for d in self._dir.managed_order)
                return {"value": [item for item in items if item is not None]}
        return None

    def mutate(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_sandbox/mutate``: apply counts of changes; returns the ids touched per kind."""
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise MutationError("seed must be an integer")
        counts = {k: v for k, v in body.items() if k != "seed"}
        return self._dir.mutate(counts, seed=seed)

    def set_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_sandbox/faults``: set fault knobs; ``assets_per_minute`` sets the Assets rate limit."""
        per_minute = body.get("assets_per_minute")
        if per_minute is not None and (
            not isinstance(per_minute, int) or isinstance(per_minute, bool) or per_minute < 0
        ):
            raise FaultsError("assets_per_minute must be an integer >= 0 (0 or null: unlimited)")
        config = self._faults.configure(body)
        if "assets_per_minute" in body and self._assets is not None:
            self._assets.set_rate_limit(per_minute or None)
            self._assets.reset_rate_window()
        return config

    def set_tenant(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_sandbox/tenant``: change settings; returns all of them."""
        with self._dir.lock:
            self._settings.update(body, self._clock)
        return self._settings.as_dict(self._clock)

    def stats(self) -> dict[str, Any]:
        """``GET /_sandbox/stats``."""
        assets: dict[str, Any] = self._assets.snapshot_stats() if self._assets is not None else {}
        return {
            "requests": self._stats.snapshot(),
            "objects": assets.get("objects", {}),
            "duplicate_keys": assets.get("duplicate_keys", {}),
        }

    def reset_stats(self) -> None:
        """``POST /_sandbox/stats/reset``."""
        self._stats.reset()
