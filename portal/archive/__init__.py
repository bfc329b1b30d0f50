"""The credit archive (信贷档案): each borrower's credit file from collection to destruction.

- ``storage``: the object store (local folder or MinIO/S3) behind one interface.
- ``models``: volumes, documents and the state machines of documents, lending, transfer and
  destruction, holds, the permanent list files, fixity runs.
- ``sniffing``: what an uploaded file really is, and a safe name for it.
- ``services`` (collection, the document lifecycle, opening content), ``lending``, ``transfer``,
  ``holds``, ``destruction``, ``fixity``: the operations; each takes the acting user, checks role
  and scope, flushes and writes one audit event; the caller commits.
- ``views``, ``forms``, ``cli``: pages and ``flask archive …``.

``document_changed`` is sent inside the transaction whenever a document is created or changes
state, custody or metadata (``action`` says which); the search index listens to it.
"""
from __future__ import annotations

from blinker import Namespace
from flask import Flask

_signals = Namespace()
document_changed = _signals.signal("xindang.archive.document-changed")


def init_app(app: Flask) -> None:
    """Build the configured object store (no network yet) and register the archive's labels."""
    from . import labels
    from .storage import store_from_config

    app.extensions["xindang_storage"] = store_from_config(app.config, app.instance_path)
    labels.register()
