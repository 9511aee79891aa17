"""The ``importer`` command: verbs, options, exit codes, progress on a terminal.

Every verb takes ``--config PATH`` (default ``./config.yaml``, env ``IMPORTER_CONFIG``). Exit
codes (``importer.errors``): 0 ok / no changes, 1 run failed, 2 plan has changes (with
``--detailed-exitcode``), 3 refused by the deletion guard, 4 configuration or credential
error, 5 another run holds the lease. Errors are printed as one clear message, never a
traceback; ``--log-level debug`` adds detail to the (anonymized) log.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from importer import __version__
from importer.config import ENV_CONFIG, Settings, config_json_schema, load_settings
from importer.errors import ImporterError, NotLandedError
from importer.render import render_json, render_markdown, render_text

__all__ = ["AppContext", "main"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass
class AppContext:
    """What every verb gets: where the config is, and the loaded settings (loaded on first use)."""

    config_path: Path
    log_level: str | None = None
    config_paths: tuple[Path, ...] = ()  # every --config given (several only for `run`)
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """Load and validate the configuration once."""
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    def runtime(self, *, console_level: str = "warning") -> Any:
        """Decrypt the credentials and wire the parts (vault, state, clients)."""
        from importer.logs import configure_logging
        from importer.runtime import open_runtime

        settings = self.settings()
        configure_logging(
            settings.logging, level=self.log_level, console_level=self.log_level or console_level
        )
        return open_runtime(settings)

    def vault_settings(self) -> Any:
        """The vault settings built from the configuration."""
        from importer.runtime import vault_settings

        return vault_settings(self.settings())


class _Cli(click.Group):
    """A click group that turns importer errors into a message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImporterError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)


def _fail(message: str, code: int) -> NoReturn:
    from importer.logs import scrub_text

    # Our messages may span lines (every config problem, every schema drift): keep the breaks.
    click.echo(f"importer: {scrub_text(message, multiline=True)}", err=True)
    sys.exit(code)


def _not_landed(what: str) -> NoReturn:
    raise NotLandedError(f"{what} has not landed yet in this build")


@click.group(cls=_Cli, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--config",
    "config_paths",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=ENV_CONFIG,
    multiple=True,
    default=("config.yaml",),
    show_default=True,
    help=f"Configuration file (env {ENV_CONFIG}); `run` takes several, one installation each.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="Override logging.level for this command.",
)
@click.version_option(__version__, prog_name="importer")
@click.pass_context
def main(ctx: click.Context, config_paths: tuple[Path, ...], log_level: str | None) -> None:
    """Keep Jira Service Management Assets in step with Microsoft Entra ID.

    \b
    Typical use:
      importer config check           validate config.yaml (no network)
      importer secrets init           create the encrypted credential vault
      importer schema apply           create the object types and attributes in Assets
      importer plan                   show what a sync would change (a dry run)
      importer sync                   apply it now
      importer run                    run as a daemon on the configured schedule
      importer demo                   try it all on the built-in sandbox
    """
    from importer.logs import configure_logging

    configure_logging(level=log_level or "warning")  # until a command loads the config: stderr only
    if len(config_paths) > 1 and ctx.invoked_subcommand != "run":
        from importer.errors import ConfigError

        raise ConfigError(f"--config is given {len(config_paths)} times; only `importer run` takes several")
    ctx.obj = AppContext(
        config_path=config_paths[0] if config_paths else Path("config.yaml"),
        log_level=log_level,
        config_paths=config_paths,
    )


# -- config -------------------------------------------------------------------------------------


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


@main.command("run")
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run every *.yaml in this directory (one installation each) in one daemon.",
)
@click.option(
    "--listen",
    default="127.0.0.1:9464",
    show_default=True,
    help="HOST:PORT for /healthz, /readyz and /metrics ('off' serves none).",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(1, 3600),
    default=25.0,
    show_default=True,
    help="Seconds a stop may take before the running sync is abandoned (keep under the grace period).",
)
@click.pass_context
def run_cmd(ctx: click.Context, config_dir: Path | None, listen: str, stop_timeout: float) -> None:
    """Run as a daemon: sync on the configured schedule, one run at a time across all hosts.

    Incremental runs follow Graph delta links; full runs re-read everything. Each run takes the
    installation's lease first and skips when another host holds it. SIGTERM or SIGINT stops
    taking work, lets the current batch finish, commits nothing partial and releases the lease;
    a second signal exits at once. Several --config (or --config-dir) run several installations.
    """
    import logging
    import os

    from importer.daemon import Daemon, find_configs
    from importer.errors import ConfigError
    from importer.health import parse_listen

    app: AppContext = ctx.obj
    paths = list(app.config_paths or (app.config_path,))
    if config_dir is not None:
        source = ctx.parent.get_parameter_source("config_paths") if ctx.parent else None
        given = source not in (None, click.core.ParameterSource.DEFAULT)
        paths = [*find_configs(config_dir), *(paths if given else [])]
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    try:
        address = None if listen.strip().lower() == "off" else parse_listen(listen)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    code = Daemon(unique, listen=address, stop_timeout_s=stop_timeout, log_level=app.log_level).run()
    # Exit without waiting for worker threads: one stuck in a network call must not hold the
    # process past the stop budget (the lease is released and the logs flushed already).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@main.command("sync")
@click.option("--full", is_flag=True, help="Re-read everything from Entra and Assets (repairs hand edits).")
@click.option(
    "--approve",
    "approve",
    metavar="PLAN_HASH",
    default=None,
    help="Apply a plan the deletion guard refused, if it has exactly this hash.",
)
@click.option("--only", "only", metavar="TYPE", multiple=True, help="Sync only these mapped types.")
@click.option(
    "--wait",
    type=float,
    default=0,
    show_default=True,
    help="Seconds to wait for the lease if another run holds it (then exit 5).",
)
@click.pass_obj
def sync_cmd(app: AppContext, full: bool, approve: str | None, only: tuple[str, ...], wait: float) -> None:
    """Sync now: read Entra, plan, apply to Assets, commit state.

    Exit 0 when everything applied, 1 when the run or some objects failed (they are retried next
    run), 3 when the deletion guard refused the plan, 5 when another run holds the lease.
    """
    from importer.runtime import holder_name
    from importer.sync import LeaseKeeper, RunOptions, run_sync

    rt = app.runtime()
    try:
        with _progress() as progress, LeaseKeeper(rt, holder_name(), wait_s=wait) as keeper:
            options = RunOptions(apply=True, full=full, only=only, approve=approve, progress=progress)
            result = run_sync(rt, options, lease=keeper)
    finally:
        rt.close()
    out = sys.stdout
    color = out.isatty()
    fmt, _ = _formatters(result, rt, redact=False)
    if result.outcome == "refused":
        click.echo(
            render_text(result.plan, instance=rt.settings.instance, color=color, fmt=fmt, limit=50), nl=False
        )
    click.echo(_summary_line(result))
    if result.outcome != "refused":  # a refused plan was rendered above, warnings included
        for warning in result.plan.warnings:
            click.echo(f"warning: {warning}", err=True)
    for failure in result.failures[:20]:
        who = failure.object_id or rt.pseudonyms(failure.source_id)  # a Graph id of a person: pseudonymized
        click.echo(
            f"  failed {failure.action} {failure.type} {who}: {failure.error}",
            err=True,
        )
    if len(result.failures) > 20:
        click.echo(f"  ... and {len(result.failures) - 20} more failures (see the log)", err=True)
    if result.message:
        click.echo(result.message, err=True)
    sys.exit(result.exit_code())


@main.command("plan")
@click.option(
    "--full", is_flag=True, help="Plan against a full read instead of the delta since the last run."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the plan to this file instead of stdout.",
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes (0 when empty).")
@click.option("--redact", is_flag=True, help="Pseudonymize personal values (for public CI logs).")
@click.option("--only", "only", metavar="TYPE", multiple=True, help="Plan only these mapped types.")
@click.pass_obj
def plan_cmd(
    app: AppContext,
    full: bool,
    fmt: str,
    out: Path | None,
    detailed_exitcode: bool,
    redact: bool,
    only: tuple[str, ...],
) -> None:
    """Show what a sync would change, without changing anything (the CI dry run).

    Exit 0 when there is nothing to do, 2 with --detailed-exitcode when there are changes,
    3 when the deletion guard would refuse the plan.
    """
    import os

    from importer.sync import RunOptions, run_sync

    rt = app.runtime()
    trigger = "ci" if os.environ.get("CI") else "manual"
    try:
        result = run_sync(rt, RunOptions(apply=False, full=full, only=only, trigger=trigger))  # type: ignore[arg-type]
    finally:
        rt.close()
    value_fmt, redactor = _formatters(result, rt, redact=redact)
    instance = rt.settings.instance
    if fmt == "json":
        text = render_json(result.plan, instance=instance, fmt=value_fmt, redact=redactor)
    elif fmt == "markdown":
        text = render_markdown(result.plan, instance=instance, fmt=value_fmt, redact=redactor)
    else:
        color = out is None and sys.stdout.isatty()
        text = render_text(result.plan, instance=instance, color=color, fmt=value_fmt, redact=redactor)
    if out is not None:
        out.write_text(text, encoding="utf-8")
        click.echo(f"plan written to {out} ({_summary_line(result)})", err=True)
    else:
        click.echo(text, nl=False)
    sys.exit(result.exit_code(detailed=detailed_exitcode))


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

    Nothing is written. Exit 0 when every check passes, 1 otherwise.
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


@main.group("privacy")
def privacy_group() -> None:
    """A person's rights: find their pseudonym, export what is held, forget them."""


@privacy_group.command("pseudonym")
@click.argument("who", metavar="EMAIL_OR_UPN")
@click.pass_obj
def privacy_pseudonym(app: AppContext, who: str) -> None:
    """Print the pseudonym under which this person appears in the logs.

    Logs never hold a UPN, mail, name or Entra id in clear: each is replaced by a keyed
    pseudonym (pid:...), the same for the same value under any field. Search the log directory
    for the printed value. Someone whose mail differs from their UPN has one pseudonym for each;
    `importer privacy export` searches all of them. Needs only the vault (for the pepper).
    """
    from importer.privacy import open_pseudonymizer

    click.echo(open_pseudonymizer(app.settings())(who))


@privacy_group.command("export")
@click.argument("who", metavar="EMAIL_OR_UPN")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON to this file (created 0600) instead of stdout.",
)
@click.pass_obj
def privacy_export(app: AppContext, who: str, out: Path | None) -> None:
    """Print, as JSON, everything the importer holds about this person.

    The person is looked up in Entra (by UPN and by mail) and among the Assets user objects
    (which also finds people already gone from Entra). The export lists their id map entries
    and cached Atlassian account lookups in state, audit records under their pseudonym, the
    Assets objects the importer manages for them (their user object and the devices whose owner
    it is), and every log line under one of their pseudonyms. It holds personal data: hand it
    to the person only.
    """
    import os

    from importer.privacy import collect, find_person, resolve

    rt = app.runtime()
    try:
        schema = resolve(rt)
        holdings = collect(rt, find_person(rt, who, schema), schema)
    finally:
        rt.close()
    text = json.dumps(holdings.as_json(rt.settings), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"export written to {out}", err=True)


@privacy_group.command("forget")
@click.argument("who", metavar="EMAIL_OR_UPN")
@click.option(
    "--delete-objects",
    is_flag=True,
    help="Also delete their Assets user object and clear the owner of their devices (a plan, shown first).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be removed and change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation.")
@click.option(
    "--wait",
    type=float,
    default=0,
    show_default=True,
    help="Seconds to wait for the lease if a sync is running (then exit 5).",
)
@click.pass_obj
def privacy_forget(
    app: AppContext, who: str, delete_objects: bool, dry_run: bool, yes: bool, wait: float
) -> None:
    """Remove this person from state and caches (and optionally their Assets objects).

    \b
    Removes their id map entries and cached Atlassian account lookups from state, and writes an
    audit record holding only their pseudonym. With --delete-objects their Assets user object is
    deleted and the devices they own are kept but no longer point at them (Owner cleared): a plan
    that is shown first and applied only after confirmation (or --yes); --dry-run only shows it.
    It holds the installation's lease, so no sync runs meanwhile.

    \b
    Log lines are not rewritten: they hold only pseudonyms and go with the log files after
    logging.retention_days (60 at most); `privacy export` still finds them until then.

    \b
    If they are still in Entra and not filtered out by the mapping, the importer syncs them
    again: the next full sync (and an incremental one once their Entra record changes)
    recreates their state and, if deleted, their objects. Remove them from Entra or exclude
    them with a mapping filter first.
    """
    from importer.errors import FatalError
    from importer.privacy import collect, find_person, forget, forget_plan, resolve
    from importer.runtime import holder_name
    from importer.sync import LeaseKeeper

    rt = app.runtime()
    try:
        schema = resolve(rt)
        person = find_person(rt, who, schema)
        holdings = collect(rt, person, schema)
        plan = forget_plan(holdings, rt.settings) if delete_objects else None
        click.echo("\n".join(holdings.describe()))
        if plan is not None:
            click.echo(render_text(plan, instance=rt.settings.instance, color=sys.stdout.isatty()), nl=False)
        if person.in_entra:
            click.echo(
                "They are still in Entra: the next full sync brings them back "
                "unless they are removed from Entra or filtered out by the mapping."
            )
        if dry_run:
            click.echo("dry run: nothing was changed")
            return
        if not yes:
            click.confirm("Forget this person?", abort=True)
        with LeaseKeeper(rt, holder_name(), wait_s=wait):
            # Read again under the lease: a sync may have run while the plan was on screen.
            holdings = collect(rt, find_person(rt, who, schema), schema)
            fresh = forget_plan(holdings, rt.settings) if delete_objects else None
            if fresh is not None and plan is not None and fresh.plan_hash != plan.plan_hash:
                raise FatalError(
                    "their Assets objects changed after the plan was shown; run the command again"
                )
            result = forget(rt, holdings, fresh, schema)
    finally:
        rt.close()
    counts = result.applied.counts if result.applied else {}
    deleted = sum(n for (_, action), n in counts.items() if action == "delete")
    unlinked = sum(n for (_, action), n in counts.items() if action == "update")
    click.echo(
        f"forgot {holdings.pseudonym}: {result.id_map_entries} id map entries and "
        f"{result.cached_accounts} cached account lookups removed, {deleted} Assets objects deleted, "
        f"{unlinked} devices unlinked"
    )
    for problem in result.failures:
        click.echo(f"  failed: {problem}", err=True)
    sys.exit(1 if result.failures else 0)


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


def _summary_line(result: Any) -> str:
    s = result.plan.summary()
    done = {
        a: sum(c.get(a, 0) for c in result.applied.values()) for a in ("create", "update", "mark", "delete")
    }
    if result.outcome == "planned":
        return f"plan {result.plan.plan_hash}: " + ", ".join(f"{n} {a}" for a, n in s.items())
    if result.outcome == "refused":
        return f"refused by the deletion guard (plan {result.plan.plan_hash}); nothing was changed"
    failed = len(result.failures)
    return (
        f"sync {result.outcome} ({result.plan.mode}) in {result.duration_s:.1f}s: "
        f"{done['create']} created, {done['update']} updated, {done['mark']} marked, "
        f"{done['delete']} deleted, {s['unchanged']} unchanged, {failed} failed; "
        f"{sum(result.requests.values())} requests"
    )


def _formatters(result: Any, rt: Any, *, redact: bool) -> tuple[Any, Any]:
    from importer.sync import value_formatter

    return value_formatter(result, rt.settings, rt.pseudonyms if redact else None)


@contextlib.contextmanager
def _progress() -> Iterator[Any]:
    """A progress bar on a terminal; a log line per 1,000 operations otherwise."""
    from importer.progress import open_progress

    with open_progress(tty=sys.stderr.isatty()) as progress:
        yield progress


def _register_optional_groups() -> None:
    """Attach verb groups that live in their own modules (secrets, sandbox)."""
    try:
        from importer.secrets_cli import secrets

        main.add_command(secrets)
    except ImportError:

        @main.group("secrets")
        def secrets_placeholder() -> None:
            """Manage the encrypted credential vault (init, set, list, verify, rotate, delete)."""
            _not_landed("importer secrets")

    try:
        from importer.sandbox.cli import sandbox

        main.add_command(sandbox)
    except ImportError:

        @main.group("sandbox")
        def sandbox_placeholder() -> None:
            """Serve a simulated Entra tenant and Assets workspace on 127.0.0.1."""
            _not_landed("importer sandbox")


_register_optional_groups()
