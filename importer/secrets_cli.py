"""``importer secrets``: create and manage the encrypted credential vault (see ``importer.vault``).

Secret values are read from a hidden prompt or from standard input, never from the command
line, and no command prints one. Errors print a message and exit with the error's code (4 for
vault and credential problems), never a traceback. Every command closes the vault (its keys are
wiped from memory) before it returns.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from importer.errors import ImporterError
from importer.vault import (
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    LOG_PEPPER,
    SOURCES,
    WELL_KNOWN,
    PassphraseMissingError,
    Vault,
    VaultSettings,
    VaultUsageError,
    check_name,
    has_passphrase_source,
)

__all__ = ["online_checks", "secrets"]

HELP = f"""Manage the encrypted credential vault.

Credentials (Entra tenant id, client id, client secret or certificate password, Jira e-mail and
API token, and the log pepper) live only in the vault file, each encrypted under a data key that
is itself encrypted under a master key you control: your encryption string, an AWS KMS key, or
both (vault.require: [passphrase, kms]).

\b
Setup:
  1. In config.yaml, section vault: set path, and kms_key_id if you use AWS KMS.
  2. Give the importer its encryption string (passphrase mode), one of:
       {ENV_PASSPHRASE}=...                (environment)
       {ENV_PASSPHRASE_FILE}=/path/to/file  (systemd credential, container secret)
       vault.passphrase_file in config.yaml
  3. importer secrets init               (asks for the encryption string if none is set)
  4. importer secrets set entra_tenant_id   and likewise entra_client_id,
     entra_client_secret (or entra_cert_password), jira_email, jira_api_token
  5. importer secrets verify

Values are typed at a hidden prompt or piped with --stdin; they are never accepted as
arguments. See docs/secrets.md for systemd, container and Kubernetes setups.
"""

NO_ARGUMENT_VALUES = (
    "secret values are never taken from the command line (they would stay in shell history and "
    "be visible to other users in the process list). Run `importer secrets set NAME` and type the "
    "value at the hidden prompt, or pipe it in with --stdin. If you typed a real value, treat it "
    "as exposed and replace it at its source."
)

PEPPER_CONSEQUENCES = (
    f"{LOG_PEPPER} is the key of every pseudonym in the logs and in state. A new one gives everyone "
    "new pseudonyms: `importer privacy pseudonym` and `privacy export` no longer find the log lines "
    "written so far, and the state store is refused as belonging to another tenant (its tenant "
    "pseudonym no longer matches), so the installation then needs a new state store, whose first "
    "run is a full run."
)
NEW_PEPPER = f"openssl rand -base64 32 | importer secrets set {LOG_PEPPER} --stdin"


def online_checks(ctx: click.Context) -> list[tuple[str, bool, str]]:
    """Check that the stored credentials work against Entra and Jira: (what, ok, detail) per check."""
    from importer.doctor import run_checks

    source = ctx.obj
    load = getattr(source, "settings", None)
    if not callable(load):
        raise VaultUsageError("vault", "online checks need the full configuration (--config)")
    return [
        (f.name, f.ok, f.detail if f.ok or not f.fix else f"{f.detail} (fix: {f.fix})")
        for f in run_checks(load(), only_credentials=True)
        if f.name != "config"
    ]


class _SecretsGroup(click.Group):
    """Turns importer errors into one line on stderr and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImporterError as exc:
            from importer.logs import scrub_text

            # Our messages may span lines (every config problem): keep the breaks, as the main group does.
            click.echo(f"importer: {scrub_text(str(exc), multiline=True)}", err=True)
            ctx.exit(exc.exit_code)


def _settings(ctx: click.Context) -> VaultSettings:
    source = ctx.obj
    if not hasattr(source, "vault_settings"):
        raise click.UsageError("no configuration: run this as `importer [--config PATH] secrets ...`")
    settings: VaultSettings = source.vault_settings()
    return settings


def _interactive() -> bool:
    return sys.stdin.isatty()


def _open(settings: VaultSettings, *, check_require: bool = True) -> Vault:
    """Open the vault; at a terminal with no encryption string configured, ask for it once."""
    try:
        return Vault.open(settings, check_require=check_require)
    except PassphraseMissingError:
        if has_passphrase_source(settings) or not _interactive():
            raise
    typed: str = click.prompt("Encryption string", hide_input=True)
    environ = {**os.environ, ENV_PASSPHRASE: typed}
    return Vault.open(settings, environ=environ, check_require=check_require)


def _check_pepper(path: Path, value: str) -> None:
    """Refuse a log pepper shorter than the pseudonymizer accepts (the importer would not start)."""
    from importer.privacy import MIN_PEPPER_BYTES, pepper_bytes

    if len(pepper_bytes(value)) < MIN_PEPPER_BYTES:
        raise VaultUsageError(
            path,
            f"a {LOG_PEPPER} must be at least {MIN_PEPPER_BYTES} bytes (after base64 decoding); "
            f"nothing was stored. Generate one: `{NEW_PEPPER}`",
        )


def _new_passphrase(prompt: str) -> str:
    value: str = click.prompt(prompt, hide_input=True, confirmation_prompt="Repeat it to confirm")
    return value


@click.group("secrets", cls=_SecretsGroup, help=HELP)
def secrets() -> None:
    """Manage the encrypted credential vault."""


@secrets.command("init")
@click.pass_context
def init_cmd(ctx: click.Context) -> None:
    """Create a new vault (never overwrites one) with a generated log pepper."""
    settings = _settings(ctx)
    passphrase = None
    if "passphrase" in settings.require and not has_passphrase_source(settings):
        click.echo(f"No {ENV_PASSPHRASE} or {ENV_PASSPHRASE_FILE} is set; choose the encryption string now.")
        click.echo("Keep it somewhere safe: without it the vault cannot be opened.")
        passphrase = _new_passphrase("New encryption string")
    with Vault.create(settings, passphrase=passphrase) as vault:
        sources = "+".join(vault.require)
    click.echo(f"created {settings.path} (protected by {sources}; {LOG_PEPPER} generated)")
    if passphrase is not None:
        click.echo(f"Before running the importer, provide the encryption string via {ENV_PASSPHRASE_FILE}.")
    click.echo("Next: importer secrets set entra_tenant_id   (then the other credentials; see --help)")


@secrets.command("set", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("name")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the value from standard input.")
@click.option(
    "--force", is_flag=True, help=f"Replace an existing {LOG_PEPPER} (read the warning above first)."
)
@click.pass_context
def set_cmd(ctx: click.Context, name: str, from_stdin: bool, force: bool) -> None:
    """Store or replace secret NAME; the value comes from a hidden prompt or stdin, never an argument.

    \b
    log_pepper (generated by `secrets init`) is the key of every pseudonym in the logs and in
    state, and must be at least 16 bytes (after base64 decoding). An existing one is replaced
    only with --force: a new pepper gives everyone new pseudonyms, so `privacy pseudonym` and
    `privacy export` no longer find the log lines written so far, and the state store is refused
    as belonging to another tenant, so the installation needs a new state store (its first run
    is a full run). Replace it only if it leaked.
    """
    if ctx.args:
        raise click.UsageError(NO_ARGUMENT_VALUES)
    settings = _settings(ctx)
    check_name(settings.path, name)  # before any prompt: a mistyped value must not be echoed
    with _open(settings) as vault:
        existed = any(info.name == name for info in vault.names())
        if name == LOG_PEPPER and existed and not force:
            raise VaultUsageError(
                settings.path,
                f"{settings.path} already holds a {LOG_PEPPER}; nothing was changed. {PEPPER_CONSEQUENCES} "
                "Replace it only if it leaked: add --force.",
            )
        if from_stdin or not _interactive():
            value = sys.stdin.read().rstrip("\r\n")
        else:
            value = click.prompt(
                f"Value for {name}", hide_input=True, confirmation_prompt="Repeat it to confirm"
            )
        if not value:
            raise VaultUsageError(settings.path, f"no value given for {name}; nothing was stored")
        if name == LOG_PEPPER:
            _check_pepper(settings.path, value)
        vault.set(name, value)
    click.echo(f"{'replaced' if existed else 'stored'} {name} in {settings.path}")
    if name == LOG_PEPPER and existed:
        click.echo("pseudonyms change from now on: use a new state store for this installation")


@secrets.command("list")
@click.pass_context
def list_cmd(ctx: click.Context) -> None:
    """List the stored names and when each was set (never the values)."""
    with _open(_settings(ctx)) as vault:
        infos = vault.names()
    width = max([len(info.name) for info in infos] + [4])
    click.echo(f"{'NAME':<{width}}  SET AT (UTC)")
    for info in infos:
        click.echo(f"{info.name:<{width}}  {info.set_at:%Y-%m-%d %H:%M:%S}")
    unset = [name for name in WELL_KNOWN if name not in {info.name for info in infos}]
    if unset:
        click.echo(f"not set: {', '.join(unset)}")


@secrets.command("verify")
@click.option("--online", is_flag=True, help="Also check that the credentials work against Entra and Jira.")
@click.pass_context
def verify_cmd(ctx: click.Context, online: bool) -> None:
    """Decrypt every secret (and with --online, try them against Entra and Jira)."""
    settings = _settings(ctx)
    with _open(settings) as vault:
        names = vault.verify()
    click.echo(f"ok: {settings.path} opens and all {len(names)} secrets decrypt ({', '.join(names)})")
    if not online:
        return
    failed = 0
    for what, ok, detail in online_checks(ctx):
        failed += not ok
        click.echo(f"{'ok' if ok else 'FAILED'}: {what}: {detail}")
    if failed:
        raise VaultUsageError(settings.path, f"{failed} online check(s) failed")


@secrets.command("rotate")
@click.option(
    "--new-passphrase", is_flag=True, help="Prompt for a new encryption string; the old one stops working."
)
@click.option("--to-kms", metavar="KEY_ID", help="Wrap the data key under this AWS KMS key.")
@click.option("--data-key", is_flag=True, help="Also replace the data key and re-encrypt every value.")
@click.option(
    "--require",
    type=click.Choice(SOURCES),
    multiple=True,
    help="Key sources afterwards (repeatable); default: vault.require from the configuration.",
)
@click.pass_context
def rotate_cmd(
    ctx: click.Context, new_passphrase: bool, to_kms: str | None, data_key: bool, require: tuple[str, ...]
) -> None:
    """Re-wrap the data key under fresh master keys (and optionally replace the data key)."""
    settings = _settings(ctx)
    with _open(settings, check_require=False) as vault:
        phrase = _new_passphrase("New encryption string") if new_passphrase else None
        vault.rotate(new_passphrase=phrase, to_kms=to_kms, require=require or None, data_key=data_key)
        now = vault.require
    click.echo(f"rotated {settings.path}: now protected by {'+'.join(now)}")
    if data_key:
        click.echo("every value was re-encrypted under a new data key")
    if phrase is not None:
        click.echo(
            f"update {ENV_PASSPHRASE} / {ENV_PASSPHRASE_FILE} now: the old encryption string no longer works"
        )
    if to_kms and to_kms != settings.kms_key_id:
        click.echo(f"set vault.kms_key_id: {to_kms} in the configuration")
    if now != settings.require:
        click.echo(f"set vault.require: [{', '.join(now)}] in the configuration")


@secrets.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help=f"Needed to delete {LOG_PEPPER} (read the warning above first).")
@click.pass_context
def delete_cmd(ctx: click.Context, name: str, yes: bool, force: bool) -> None:
    """Remove secret NAME from the vault.

    \b
    log_pepper is deleted only with --force: the importer does not start without it, and a new
    one gives everyone new pseudonyms, so `privacy pseudonym` and `privacy export` no longer find
    the log lines written so far, and the state store is refused as belonging to another tenant.
    """
    settings = _settings(ctx)
    check_name(settings.path, name)  # before the prompt: a mistyped value must not be echoed
    if name == LOG_PEPPER and not force:
        raise VaultUsageError(
            settings.path,
            f"refusing to delete {LOG_PEPPER} from {settings.path}; nothing was changed. The importer "
            f"does not start without it. {PEPPER_CONSEQUENCES} To delete it anyway, add --force.",
        )
    with _open(settings) as vault:
        if not yes:
            click.confirm(f"Delete {name} from {settings.path}?", abort=True)
        vault.delete(name)
    click.echo(f"deleted {name} from {settings.path}")
