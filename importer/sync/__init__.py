"""One run, end to end: read Entra, read Assets, plan, guard, apply, commit. Binds ``run_id``.

::

    schema      resolve types and attributes by name (drift stops the run before any write)
    read        per source: follow the stored delta link, or a full delta round (first run,
                --full, expired link, changed $select or mapping); device owners
    map         Graph records ─► desired values (pure); filtered-out records count as removed
    current     full: every object of the type (AQL pages), type by type, after the type's own
                normalise step, so that an object already as desired is kept as its id alone as
                its page arrives (memory); incremental: the content hash in the id map skips
                unchanged records, the rest are looked up by key (AQL IN)
    normalise   references ─► object ids (or Pending creates), emails ─► accountIds, values per kind
    plan/guard  importer.plan
    apply       importer.apply (only for sync; plan stops before)
    commit      delta links + id map + run record in one fenced commit, only after apply;
                delta links do not move when something failed, so the next run retries it

Incremental correctness rests on three facts: creates are preceded by a lookup by key (so a
crash between apply and commit never duplicates), the content hash only lets a run *skip*
work that was committed, and a full run reconciles everything.
"""

from __future__ import annotations

from importer.sync._lease import LeaseKeeper, RunInterrupted
from importer.sync._model import RunOptions, RunResult, content_hash
from importer.sync._run import run_sync
from importer.sync._schema import requirements, value_formatter

__all__ = [
    "LeaseKeeper",
    "RunInterrupted",
    "RunOptions",
    "RunResult",
    "content_hash",
    "requirements",
    "run_sync",
    "value_formatter",
]

# Layout: ``_model.py`` (options, result, content hash, the per-type Work), ``_schema.py`` (what
# the mapping needs from Assets; how plan values are shown), ``_lease.py`` (LeaseKeeper),
# ``_read.py`` (sources and owners from Entra), ``_target.py`` (current objects, normalising,
# the writer), ``_record.py`` (run records and results), ``_run.py`` (the run in order, commit).
