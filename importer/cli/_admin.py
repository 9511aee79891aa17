"""Administration verbs: ``config``, ``schema``, ``state``, ``doctor``, ``status``, ``demo``."""

from __future__ import annotations

import json
import sys

import click

from importer.cli._app import AppContext, main
from importer.config import config_json_schema


@main.group("config")
def config_group() -> None:
    """Validate the configuration or print its JSON Schema."""


@config_group.command("check")
@click.pass_obj
def config_check(app: AppContext) -> None:
    """Validate the configuration file without touching the network.

    Exits 0 when it is valid, or 4 listing every problem with its key path.
    """
    settings = app.settings()
    types = ", ".join(f"{e.name} → {e.object_type}" for e in settings.mapping.object_types)
    click.echo(f"{app.config_path}: valid (instance {settings.instance}; {types})")


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the configuration file (for editors and CI)."""
    click.echo(json.dumps(config_json_schema(), indent=2, sort_keys=True))


# -- verbs whose capability is wired in later modules ------------------------------------------


@main.group("schema")
def schema_group() -> None:
    """Compare or create the Assets object types and attributes the mapping needs."""


@schema_group.command("plan")
@click.pass_obj
def schema_plan(app: AppContext) -> None:
    """Show which object types, attributes and statuses are missing or wrong in Assets.

    Exit 0 when the schema has everything the mapping needs, 2 when something is missing.
    """
    from importer.assets import plan_schema
    from importer.sync import requirements

    rt = app.runtime()
    try:
        plan = plan_schema(rt.assets(), rt.settings.assets.schema_key, requirements(rt.settings))
    finally:
        rt.close()
    click.echo(plan.render())
    sys.exit(0 if plan.is_empty else 2)


@schema_group.command("apply")
@click.pass_obj
def schema_apply(app: AppContext) -> None:
    """Create what the mapping needs in the Assets schema (idempotent; never deletes or changes).

    Object types get their icon, the key attribute (unique, required), the label, references to
    the right type, User and Status attributes, and the statuses used for marking. Attributes of
    a different type than the mapping needs are reported, never changed.
    """
    from importer.assets import apply_schema
    from importer.sync import requirements

    rt = app.runtime()
    try:
        result = apply_schema(rt.assets(), rt.settings.assets.schema_key, requirements(rt.settings))
    finally:
        rt.close()
    for name in result.created_types:
        click.echo(f"+ object type {name}")
    for name in result.created_attributes:
        click.echo(f"+ attribute {name}")
    for name in result.created_statuses:
        click.echo(f"+ status {name}")
    for conflict in result.conflicts:
        click.echo(f"! {conflict}", err=True)
    click.echo(
        f"schema {rt.settings.assets.schema_key}: {result.created} created"
        + (f", {len(result.conflicts)} conflicts left alone" if result.conflicts else "")
    )
    sys.exit(1 if result.conflicts else 0)


@main.group("state")
def state_group() -> None:
    """Manage the state store (SQLite file or DynamoDB table)."""


@state_group.command("init")
@click.pass_obj
def state_init(app: AppContext) -> None:
    """Create the state store (the SQLite file, or the DynamoDB table with TTL)."""
    from importer.runtime import open_state
    from importer.state import init_state

    store = open_state(app.settings())
    try:
        click.echo(init_state(store))
    finally:
        store.close()


@main.command("doctor")
@click.pass_obj
def doctor_cmd(app: AppContext) -> None:
    """Check each piece (config, vault, state, Entra token and permissions, Assets) and say how to fix it.

    Nothing is written: a missing state store is reported (create it with `importer state
    init`), and the installation record is compared with the configuration, never updated.
    Exit 0 when every check passes, 1 otherwise.
    """
    from importer.doctor import run_checks
    from importer.logs import configure_logging

    settings = app.settings()
    configure_logging(settings.logging, level=app.log_level, console_level=app.log_level or "error")
    failed = 0
    for finding in run_checks(settings):
        failed += not finding.ok
        mark = click.style("ok", fg="green") if finding.ok else click.style("FAILED", fg="red", bold=True)
        click.echo(f"{mark:>6}  {finding.name:<14} {finding.detail}")
        if not finding.ok and finding.fix:
            click.echo(f"{'':>6}  {'':<14} fix: {finding.fix}")
    sys.exit(1 if failed else 0)


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option(
    "--limit", type=click.IntRange(1, 500), default=10, show_default=True, help="How many runs to show."
)
@click.pass_obj
def status_cmd(app: AppContext, as_json: bool, limit: int) -> None:
    """Show the last runs, the next scheduled runs and who holds the lease.

    Reads only the configuration and the state store (no vault, no daemon needed).
    """
    from importer.runtime import open_state
    from importer.status import gather_status, print_status, state_exists

    settings = app.settings()
    store = open_state(settings) if state_exists(settings) else None
    try:
        doc = gather_status(settings, store, limit=limit)
    finally:
        if store is not None:
            store.close()
    if as_json:
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    from rich.console import Console

    tty = sys.stdout.isatty()
    print_status(doc, Console(highlight=False, soft_wrap=not tty, width=None if tty else 160))


@main.command("demo")
@click.option("--users", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--devices", type=click.IntRange(0, 100_000), default=1500, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same tenant.")
def demo_cmd(users: int, devices: int, seed: int) -> None:
    """Run the whole job on the built-in sandbox (no tenant, no Jira site, nothing leaves this machine).

    Creates the schema, shows the first plan, syncs with a progress bar, changes the tenant
    (updates, soft and hard deletes, new users, owner changes), runs an incremental and a full
    plan and sync, and ends with a table of what each step cost in requests.
    """
    from importer.demo import run_demo

    sys.exit(run_demo(users=users, devices=devices, seed=seed))
