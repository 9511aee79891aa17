"""``importer privacy``: a person's pseudonym, export and erasure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from importer.cli._app import AppContext, main, write_private
from importer.render import render_text


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
    help="Write the JSON to this file (mode 0600, replacing any file or symlink there) instead of stdout.",
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
    write_private(out, text)
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
