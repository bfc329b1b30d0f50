"""The credit archive (信贷档案): each borrower's credit file from collection to destruction.

- ``storage``: the object store (local folder or MinIO/S3) behind one interface.
- ``models``: volumes, documents and the state machines of documents, lending, transfer and
  destruction, holds, the permanent list files, fixity runs.
- ``sniffing``: what an uploaded file really is, and a safe name for it.
- ``services`` (collection, the document lifecycle, opening content), ``lending``, ``transfer``,
  ``holds``, ``destruction``, ``fixity``: the operations; each takes the acting user, checks role
  and scope, flushes and writes one audit event; the caller commits.
- ``views``, ``forms``, ``cli``: pages and ``flask archive …``.
"""
