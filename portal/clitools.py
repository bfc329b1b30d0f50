"""What every ``flask …`` command shares: stopping with a message and an exit status."""
from __future__ import annotations

import sys
from typing import NoReturn

import click


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` in red on stderr and exit with ``code``."""
    click.secho(message, fg="red", err=True)
    sys.exit(code)
