"""Verbs that run the sync: ``run`` (daemon), ``sync``, ``plan``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from importer.cli._app import AppContext, main, write_private
from importer.render import render_json, render_markdown, render_text


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
    help="Write the plan to this file (mode 0600: it may hold names) instead of stdout.",
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
    3 when the deletion guard would refuse the plan, 1 when a read from Entra did not
    complete (the plan may miss changes; it says which source).
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
        write_private(out, text)
        click.echo(f"plan written to {out} ({_summary_line(result)})", err=True)
    else:
        click.echo(text, nl=False)
    sys.exit(result.exit_code(detailed=detailed_exitcode))


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
