"""Fault injection for the simulated Graph and Assets: throttling, 5xx, drops, truncation, latency.

Configured through ``POST /_sandbox/faults`` per service (``graph``, ``assets``, or both). Every
decision comes from a seeded RNG per service, so a sequential client sees the same faults in
the same places on every run (concurrent clients interleave, which changes who gets which).

- ``rate_429``: answer 429 in the service's own shape, with ``Retry-After`` drawn from
  ``retry_after`` [lo, hi] seconds and written as ``seconds`` (integer, rounded up),
  ``decimal`` (``2.128``), ``comma`` (``0,120``), ``http-date``, ``none`` (no header) or
  ``mixed`` (each of those in turn).
- ``rate_5xx``: answer one of ``statuses_5xx`` (default 502, 503, 504): 503 carries a
  ``Retry-After`` like a 429; 502 is an HTML gateway page, as real gateways send.
- ``drop_rate``: close the connection without a response, half the time before the request is
  processed and half the time after (so a write may or may not have happened).
- ``truncate_rate``: process the request, send a ``Content-Length`` larger than the body
  bytes actually sent, then close.
- ``latency_ms``: sleep before answering.
- ``delay_answer_ms``: process the request, then hold the answer that long, so a client whose
  read timeout is shorter gives up although the request took effect (a create that landed
  while its answer was lost). Only requests matching ``delay_answer_match`` are delayed
  (``"POST /object/create"``: that method and a path containing the rest; ``"/object/"``: a
  path containing it, any method; ``""``: every request), and only the next
  ``delay_answer_count`` of them (0: all).
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from importer.sandbox.base import SandboxRequest, SandboxResponse
from importer.sandbox.odata import graph_error_body, graph_response, request_ids

__all__ = ["FAULT_SERVICES", "FaultConfig", "FaultDecision", "Faults", "FaultsError", "fault_response"]

FAULT_SERVICES = ("graph", "assets")
_FORMATS = ("seconds", "decimal", "comma", "http-date", "mixed", "none")
_MIXED = ("seconds", "decimal", "comma", "http-date", "none")


class FaultsError(ValueError):
    """A faults request named an unknown knob or gave a wrong value."""


@dataclass(slots=True)
class FaultConfig:
    """The fault knobs of one service (zeros switch a fault off)."""

    rate_429: float = 0.0
    retry_after: tuple[float, float] = (1.0, 1.0)
    retry_after_format: str = "seconds"
    rate_5xx: float = 0.0
    statuses_5xx: tuple[int, ...] = (502, 503, 504)
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    latency_ms: float = 0.0
    delay_answer_ms: float = 0.0
    delay_answer_match: str = ""
    delay_answer_count: int = 0

    def active(self) -> bool:
        """True when any fault can happen."""
        return bool(
            self.rate_429
            or self.rate_5xx
            or self.drop_rate
            or self.truncate_rate
            or self.latency_ms
            or self.delay_answer_ms
        )


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to do with one request."""

    action: str = "pass"  # pass | drop_before | drop_after | status | truncate
    status: int = 0
    retry_after: str | None = None
    latency_s: float = 0.0


@dataclass(slots=True)
class _State:
    config: FaultConfig = field(default_factory=FaultConfig)
    rng: random.Random = field(default_factory=random.Random)
    mixed: int = 0
    delayed: int = 0  # answers delayed since the last configuration


class Faults:
    """Per-service fault configuration and the seeded decisions."""

    def __init__(self, *, seed: int) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._states = {name: _State(rng=random.Random(f"{seed}:{name}")) for name in FAULT_SERVICES}

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply a ``POST /_sandbox/faults`` body; returns the new configuration of every service."""
        service = body.get("service")
        if service is not None and service not in FAULT_SERVICES:
            raise FaultsError(f"service must be one of {list(FAULT_SERVICES)} or null")
        updates = {
            k: v for k, v in body.items() if k not in ("service", "seed", "reset", "assets_per_minute")
        }
        names = [service] if service else list(FAULT_SERVICES)
        with self._lock:
            for name in names:
                state = self._states[name]
                config = FaultConfig() if body.get("reset") else state.config
                state.config = _apply(config, updates)
                seed = body.get("seed", self._seed)
                state.rng = random.Random(f"{seed}:{name}")
                state.mixed = 0
                state.delayed = 0
            return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        """Every service's configuration as JSON-ready values."""
        return {name: asdict(state.config) for name, state in self._states.items()}

    def active(self, service: str) -> bool:
        """True when the service has any fault switched on."""
        state = self._states.get(service)
        return state is not None and state.config.active()

    def decide(self, service: str) -> FaultDecision:
        """The fault (or none) for the next request to ``service``."""
        state = self._states.get(service)
        if state is None or not state.config.active():
            return FaultDecision()
        config = state.config
        with self._lock:
            roll = state.rng.random()
            latency = config.latency_ms / 1000.0
            edge = config.drop_rate
            if roll < edge:
                action = "drop_before" if state.rng.random() < 0.5 else "drop_after"
                return FaultDecision(action=action, latency_s=latency)
            edge += config.rate_429
            if roll < edge:
                return FaultDecision(
                    action="status", status=429, retry_after=self._retry_after(state), latency_s=latency
                )
            edge += config.rate_5xx
            if roll < edge:
                status = state.rng.choice(config.statuses_5xx)
                retry_after = self._retry_after(state) if status == 503 else None
                return FaultDecision(
                    action="status", status=status, retry_after=retry_after, latency_s=latency
                )
            edge += config.truncate_rate
            if roll < edge:
                return FaultDecision(action="truncate", latency_s=latency)
            return FaultDecision(latency_s=latency)

    def answer_delay(self, service: str, method: str, path: str) -> float:
        """Seconds to hold the answer to a request that was already processed (``delay_answer_*``)."""
        state = self._states.get(service)
        if state is None or not state.config.delay_answer_ms:
            return 0.0
        config = state.config
        if not _matches(config.delay_answer_match, method, path):
            return 0.0
        with self._lock:
            if config.delay_answer_count and state.delayed >= config.delay_answer_count:
                return 0.0
            state.delayed += 1
        return config.delay_answer_ms / 1000.0

    def batch_item(self) -> FaultDecision:
        """The fault for one inner request of a Graph ``$batch`` (only 429 and 503 apply there)."""
        state = self._states["graph"]
        config = state.config
        if not (config.rate_429 or config.rate_5xx):
            return FaultDecision()
        with self._lock:
            roll = state.rng.random()
            if roll < config.rate_429:
                return FaultDecision(action="status", status=429, retry_after=self._retry_after(state))
            if roll < config.rate_429 + config.rate_5xx:
                return FaultDecision(action="status", status=503, retry_after=self._retry_after(state))
            return FaultDecision()

    @staticmethod
    def _retry_after(state: _State) -> str | None:
        config = state.config
        lo, hi = config.retry_after
        seconds = lo + (hi - lo) * state.rng.random()
        fmt = config.retry_after_format
        if fmt == "mixed":
            fmt = _MIXED[state.mixed % len(_MIXED)]
            state.mixed += 1
        if fmt == "none":
            return None
        if fmt == "seconds":
            return str(max(1, math.ceil(seconds)))
        if fmt == "decimal":
            return f"{seconds:.3f}"
        if fmt == "comma":
            return f"{seconds:.3f}".replace(".", ",")
        return email.utils.formatdate(math.ceil(time.time() + seconds), usegmt=True)


def _matches(match: str, method: str, path: str) -> bool:
    """``"POST /object/create"``: that method and a path containing the rest; ``"/object"``: any method."""
    wanted, _, rest = match.partition(" ")
    if rest and wanted.isalpha() and wanted.isupper():
        return method.upper() == wanted and rest in path
    return match in path


def _number(key: str, value: Any, *, upper: float | None = None) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise FaultsError(f"{key} must be a number >= 0")
    if upper is not None and value > upper:
        raise FaultsError(f"{key} must be <= {upper}")
    return float(value)


def _apply(config: FaultConfig, updates: dict[str, Any]) -> FaultConfig:
    out = FaultConfig(**asdict(config))
    for key, value in updates.items():
        if key in ("rate_429", "rate_5xx", "drop_rate", "truncate_rate"):
            setattr(out, key, _number(key, value, upper=1.0))
        elif key in ("latency_ms", "delay_answer_ms"):
            setattr(out, key, _number(key, value))
        elif key == "delay_answer_match":
            if not isinstance(value, str):
                raise FaultsError("delay_answer_match must be a string, e.g. 'POST /object/create'")
            out.delay_answer_match = value
        elif key == "delay_answer_count":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise FaultsError("delay_answer_count must be an integer >= 0 (0: every match)")
            out.delay_answer_count = value
        elif key == "retry_after":
            pair = [value, value] if isinstance(value, int | float) and not isinstance(value, bool) else value
            if not isinstance(pair, list) or len(pair) != 2:
                raise FaultsError("retry_after must be a number or [low, high] seconds")
            lo, hi = (_number("retry_after", v) for v in pair)
            if lo > hi:
                raise FaultsError("retry_after must be [low, high] with low <= high")
            out.retry_after = (lo, hi)
        elif key == "retry_after_format":
            if value not in _FORMATS:
                raise FaultsError(f"retry_after_format must be one of {list(_FORMATS)}")
            out.retry_after_format = value
        elif key == "statuses_5xx":
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, int) and 500 <= v < 600 for v in value)
            ):
                raise FaultsError("statuses_5xx must be a non-empty list of 5xx status codes")
            out.statuses_5xx = tuple(value)
        else:
            raise FaultsError(f"unknown fault knob {key!r}")
    if out.rate_429 + out.rate_5xx + out.drop_rate + out.truncate_rate > 1.0:
        raise FaultsError("rate_429 + rate_5xx + drop_rate + truncate_rate must be <= 1")
    return out


_HTML = (
    "<html><head><title>{status} {reason}</title></head><body><center><h1>{status} {reason}</h1></center>"
    "<hr><center>sandbox-gateway</center></body></html>"
)
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def fault_response(
    service: str, decision: FaultDecision, request: SandboxRequest, *, route: str
) -> SandboxResponse:
    """The response for a ``status`` decision, in the shape the service really uses."""
    status = decision.status
    headers = {"Retry-After": decision.retry_after} if decision.retry_after is not None else {}
    if service == "graph":
        rid, crid = request_ids(request)
        if status == 429:
            body: Any = {
                "error": {
                    "code": "TooManyRequests",
                    "innerError": {
                        "code": "429",
                        "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                        "message": "Please retry after",
                        "request-id": rid,
                        "status": "429",
                    },
                    "message": "Please retry again later.",
                }
            }
            headers["x-ms-throttle-scope"] = "Tenant_Application/Unknown"
        elif status in (503, 504):
            code, message = (
                ("serviceNotAvailable", "Service unavailable") if status == 503 else ("UnknownError", "")
            )
            body = graph_error_body(code, message, rid, crid)
        else:
            reason = _REASONS.get(status, "Error")
            page = _HTML.format(status=status, reason=reason).encode()
            headers.update({"request-id": rid, "client-request-id": crid})
            return SandboxResponse(
                status=status, body=page, route=route, headers=headers, content_type="text/html"
            )
        return graph_response(status, body, route=route, rid=rid, crid=crid, headers=headers)
    if status == 429:
        body = {
            "errorMessages": ["The request has been rate-limited. Please try again later."],
            "errors": {},
            "status": 429,
        }
        return SandboxResponse(status=429, body=body, route=route, headers=headers)
    page = _HTML.format(status=status, reason=_REASONS.get(status, "Error")).encode()
    return SandboxResponse(status=status, body=page, route=route, headers=headers, content_type="text/html")
