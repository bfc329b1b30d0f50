"""Archive pages, one module per sub-area, all on the ``archive`` blueprint (``/archive``):

- ``files``: the overview, a borrower's credit file, upload, a document, its content and its
  lifecycle steps (sort, file, archive, discard, shelf);
- ``lending``: requests, decisions, issue, renewal, return, the register and the overdue list;
- ``transfers``: handover lists to another institution (移交清册) and their PDF;
- ``holds``: legal and audit holds;
- ``destruction``: destruction lists (销毁清册), their steps and their PDF.

Each view parses input (``portal.web``), calls one service or query function (``services``,
``queries`` and the sub-area modules beside them), and renders or redirects. Role is checked
here (``require``) and scope and role again in the services.
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("archive", __name__, url_prefix="/archive")

# Each module adds its routes to ``bp``; importing them here is what registers them.
from . import destruction, files, holds, lending, transfers  # noqa: E402,F401

__all__ = ["bp"]
