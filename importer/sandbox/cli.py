"""``importer sandbox serve``: run the sandbox as a process until SIGINT or SIGTERM.

The first line on stdout, printed once the server accepts connections, is one JSON object with
the connection details (``Sandbox.info()``); nothing else is printed to stdout before it.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

__all__ = ["sandbox"]


@click.group()
def sandbox() -> None:
    """A simulated Entra tenant and Assets workspace on 127.0.0.1 (for tests, demo, benchmarks)."""


@sandbox.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to bind.")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option(
    "--users", default=100, show_default=True, type=click.IntRange(0), help="Entra users to generate."
)
@click.option(
    "--devices", default=100, show_default=True, type=click.IntRange(0), help="Entra devices to generate."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same tenant.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the CA and client certificate (default: a temporary directory, removed at exit).",
)
@click.option(
    "--write-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write an importer config for this sandbox to PATH.",
)
def serve(
    host: str,
    port: int,
    users: int,
    devices: int,
    seed: int,
    state_dir: Path | None,
    write_config: Path | None,
) -> None:
    """Serve until interrupted; the first stdout line is the connection details as JSON."""
    from importer.sandbox.app import Sandbox

    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        sb = Sandbox(users=users, devices=devices, seed=seed, host=host, port=port, state_dir=state_dir)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--host") from exc
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sb.start()
        if write_config is not None:  # config, vault and key file: `importer --config PATH plan` works
            from importer.sandbox.configfile import write_config as write_config_file

            sb.config_path = str(write_config_file(sb.info(), write_config))
        sys.stdout.write(json.dumps(sb.info()) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.2):
            pass
    finally:
        sb.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sandbox()
