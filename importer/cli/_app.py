"""The ``importer`` group itself: ``--config``, ``--log-level``, the context object, errors to exit codes."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from importer import __version__
from importer.config import ENV_CONFIG, Settings, load_settings
from importer.errors import FatalError, ImporterError

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


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600), whatever was there before.

    The text goes to a new 0600 file in the same directory that then replaces ``path``: an
    existing file's looser mode is not kept, and a symlink at ``path`` is replaced, not followed.

    Raises:
        FatalError: the file cannot be written (the message names it); ``path`` is unchanged.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    except OSError as exc:
        raise FatalError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # mkstemp's mode already; say so whatever the platform
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise FatalError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fail(message: str, code: int) -> NoReturn:
    from importer.logs import scrub_text

    # Our messages may span lines (every config problem, every schema drift): keep the breaks.
    click.echo(f"importer: {scrub_text(message, multiline=True)}", err=True)
    sys.exit(code)


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
