"""Pure mapping: Graph records ─► desired Assets objects; and the rules a mapping must obey.

Nothing here does I/O. ``check_mapping`` validates the ``mapping`` section of a raw config
document (used by ``config.py``, so every problem is reported with its key path);
``compile_mapping`` turns validated settings into callables; ``map_record`` applies one
entry to one Graph record and never raises, whatever the record holds.
"""

from __future__ import annotations

from importer.mapping._compile import (
    AccountEmail,
    CompiledAttribute,
    CompiledEntry,
    Desired,
    Ref,
    compile_mapping,
    map_record,
)
from importer.mapping._rules import SOURCE_FIELDS, check_mapping

__all__ = [
    "SOURCE_FIELDS",
    "AccountEmail",
    "CompiledAttribute",
    "CompiledEntry",
    "Desired",
    "Ref",
    "check_mapping",
    "compile_mapping",
    "map_record",
]

# Layout: ``_rules.py`` (the Graph field catalogue and the checks config.py runs),
# ``_compile.py`` (compiled entries and map_record: pure and total).
