"""The ``importer`` command: verbs, options, exit codes, progress on a terminal.

``--config PATH`` (default ``./config.yaml``, env ``IMPORTER_CONFIG``) and ``--log-level`` belong
to the ``importer`` group, so they come before the verb: ``importer --config x.yaml config check``.
Exit codes (``importer.errors``): 0 ok / no changes, 1 run failed, 2 plan has changes (with
``--detailed-exitcode``), 3 refused by the deletion guard, 4 configuration or credential
error, 5 another run holds the lease. Errors are printed as one clear message, never a
traceback; ``--log-level debug`` adds detail to the (anonymized) log.
"""

from __future__ import annotations

from importer.cli import _admin, _privacy, _runs  # noqa: F401 - each module adds its verbs to ``main``
from importer.cli._app import AppContext, main
from importer.sandbox.cli import sandbox
from importer.secrets_cli import secrets

main.add_command(secrets)
main.add_command(sandbox)

__all__ = ["AppContext", "main"]

# Layout: ``_app.py`` (the group, context object, errors), ``_runs.py`` (run, sync, plan),
# ``_admin.py`` (config, schema, state, doctor, status, demo), ``_privacy.py`` (privacy).
