"""The ``importer`` command (placeholder while the frame is written)."""

from __future__ import annotations

import click

from importer import __version__


@click.group()
@click.version_option(__version__, prog_name="importer")
def main() -> None:
    """Keep Jira Service Management Assets in step with Microsoft Entra ID."""
