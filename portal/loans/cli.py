"""``flask loans …`` commands."""
from __future__ import annotations

from flask.cli import AppGroup

loans_cli = AppGroup("loans", help="Borrowers and loans.")
