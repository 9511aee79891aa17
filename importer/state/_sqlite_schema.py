"""The SQLite state file: schema, opening (private mode, WAL, version check), clear errors, run rows.

A damaged, truncated or foreign file must stop the importer with a message that names the file
and says what to do; it must never be silently replaced, because the delta links and the id map
in it are what make the next run incremental.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from importer.errors import FatalError, RetriableError
from importer.state import _codec as c
from importer.state.models import RunRecord

__all__ = [
    "INSERT_RUN",
    "SCHEMA_VERSION",
    "SELECT_RUN",
    "connect",
    "quick_check",
    "run_from_row",
    "run_values",
    "translate_errors",
]

SCHEMA_VERSION = 1

_SCHEMA_V1 = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE installation (
        instance TEXT PRIMARY KEY, site_url TEXT NOT NULL, workspace_id TEXT,
        tenant_pseudonym TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL)""",
    """CREATE TABLE delta (
        instance TEXT NOT NULL, source TEXT NOT NULL, link TEXT NOT NULL,
        select_fingerprint TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (instance, source)) WITHOUT ROWID""",
    """CREATE TABLE id_map (
        instance TEXT NOT NULL, object_type TEXT NOT NULL, source_id TEXT NOT NULL,
        object_id TEXT NOT NULL, content_hash TEXT NOT NULL,
        PRIMARY KEY (instance, object_type, source_id)) WITHOUT ROWID""",
    "CREATE INDEX id_map_by_object ON id_map (instance, object_type, object_id)",
    """CREATE TABLE run (
        instance TEXT NOT NULL, run_id TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
        mode TEXT NOT NULL, run_trigger TEXT NOT NULL, outcome TEXT NOT NULL,
        counts TEXT NOT NULL, requests TEXT NOT NULL, plan_hash TEXT, error TEXT, holder TEXT,
        expires_at INTEGER NOT NULL, PRIMARY KEY (instance, run_id))""",
    "CREATE INDEX run_by_start ON run (instance, started_at)",
    """CREATE TABLE approval (
        instance TEXT NOT NULL, plan_hash TEXT NOT NULL, approved_at TEXT NOT NULL,
        approved_by TEXT NOT NULL, expires_at INTEGER NOT NULL,
        PRIMARY KEY (instance, plan_hash)) WITHOUT ROWID""",
    """CREATE TABLE account (
        instance TEXT NOT NULL, account_key TEXT NOT NULL, account_id TEXT,
        cached_at TEXT NOT NULL, expires_at INTEGER NOT NULL,
        PRIMARY KEY (instance, account_key)) WITHOUT ROWID""",
    """CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT NOT NULL, at TEXT NOT NULL,
        action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL)""",
    "CREATE INDEX audit_by_time ON audit (instance, at)",
    """CREATE TABLE lease (
        instance TEXT PRIMARY KEY, owner TEXT NOT NULL, fence INTEGER NOT NULL, rvn TEXT NOT NULL,
        until_us INTEGER NOT NULL, released INTEGER NOT NULL)""",
)

_DAMAGED_HINT = (
    "move it aside and run `importer state init` to start a fresh state (the next run is then "
    "a full run), or restore it from a backup"
)


@contextmanager
def translate_errors(path: Path) -> Iterator[None]:
    """Turn sqlite3 errors into importer errors that name the file and say what to do."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            raise RetriableError(f"state file {path} stayed locked by another process: {exc}") from exc
        raise FatalError(f"state file {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise FatalError(
            f"state file {path} is damaged or is not an SQLite database ({exc}); {_DAMAGED_HINT}"
        ) from exc
    except OSError as exc:
        raise FatalError(f"state file {path}: {exc.strerror or exc}") from exc


def _create_private(path: Path) -> bool:
    """Create the file (and its directory) readable by the owner only; False if it existed."""
    if path.exists():
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # another process created it a moment ago
        return False
    try:
        os.fchmod(fd, 0o600)  # whatever the umask; SQLite gives the -wal/-shm files the same mode
    finally:
        os.close(fd)
    return True


def connect(path: Path, *, busy_timeout_s: float) -> tuple[sqlite3.Connection, str]:
    """Open (creating if needed) the state file and bring its schema up to date.

    Returns the connection and a short note of what was done ("created", "opened").
    """
    with translate_errors(path):
        created = _create_private(path)
        conn = sqlite3.connect(
            str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
    try:
        with translate_errors(path):
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")  # a committed watermark survives power loss
            made_schema = _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    if created:
        return conn, "created"
    return conn, "initialised" if made_schema else "opened"


def _migrate(conn: sqlite3.Connection, path: Path) -> bool:
    """Create the schema in an empty file, or check the stored version; True if it was created."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            if row is None or not str(row[0]).isdigit():
                raise FatalError(f"state file {path} has no schema version; {_DAMAGED_HINT}")
            version = int(row[0])
            if version > SCHEMA_VERSION:
                raise FatalError(
                    f"state file {path} has schema version {version}, but this importer reads up to "
                    f"version {SCHEMA_VERSION}: it was written by a newer importer; upgrade the importer"
                )
            # Versions below SCHEMA_VERSION would be migrated here, one step at a time.
            conn.execute("COMMIT")
            return False
        if tables - {"sqlite_sequence"}:
            raise FatalError(f"{path} is an SQLite database but not an importer state file")
        for statement in _SCHEMA_V1:
            conn.execute(statement)
        conn.execute("INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
        return True
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def quick_check(conn: sqlite3.Connection, path: Path) -> None:
    """Run SQLite's integrity check; a truncated or damaged file fails here, naming the file."""
    with translate_errors(path):
        rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
    if rows != ["ok"]:
        raise FatalError(
            f"state file {path} failed its integrity check ({'; '.join(rows[:3])}); {_DAMAGED_HINT}"
        )


INSERT_RUN = (
    "INSERT OR REPLACE INTO run (instance, run_id, started_at, finished_at, mode, run_trigger,"
    " outcome, counts, requests, plan_hash, error, holder, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_RUN = (
    "SELECT run_id, started_at, finished_at, mode, run_trigger, outcome, counts, requests,"
    " plan_hash, error, holder FROM run"
)


def run_values(instance: str, run: RunRecord, expires: int) -> tuple[object, ...]:
    """The parameters of ``INSERT_RUN``."""
    return (
        instance,
        run.run_id,
        c.to_iso(run.started_at),
        c.to_iso(run.finished_at) if run.finished_at else None,
        run.mode,
        run.trigger,
        run.outcome,
        c.dump_counts(run.counts),
        c.dump_strs(run.requests),
        run.plan_hash,
        run.error,
        run.holder,
        expires,
    )


def run_from_row(instance: str, row: Sequence[Any]) -> RunRecord:
    """Parse a row of ``SELECT_RUN``."""
    return RunRecord(
        run_id=row[0],
        instance=instance,
        started_at=c.from_iso(row[1]),
        finished_at=c.from_iso(row[2]) if row[2] else None,
        mode=row[3],
        trigger=row[4],
        outcome=row[5],
        counts=c.load_counts(row[6]),
        requests=c.load_ints(row[7]),
        plan_hash=row[8],
        error=row[9],
        holder=row[10],
    )
