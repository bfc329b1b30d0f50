"""Searching the credit archive in Chinese (docs/search.md).

- ``analysis``: normalisation, rjieba with the domain dictionary, bigrams, identifier parts.
- ``schema``: the Whoosh fields, the positions format, what one document becomes.
- ``segment_writer``: the fast segment writer (new documents and merges).
- ``w3_postings``: the W3 codec's posting blocks, written a term at a time and read back in bulk.
- ``whoosh_internals``: the only module touching Whoosh's private names; checks the pinned version.
- ``index``: the index folder (open, create, rebuild, writer lock, pooled searchers, bulk load).
- ``engine``: the query executor over the index's segments.
- ``query``: the query syntax, the plan, highlights, ``search_documents`` (the service).
- ``records``: what the database says each document's index entry must be.
- ``queue``: the durable queue (written with every change) and its drainer.
- ``extract``: the text of PDF, DOCX, XLSX files and OCR of scans.
- ``models``: ``search_queue`` and ``document_text``.
- ``views``, ``cli``: the search page and ``flask search …``.

The database is the source of truth; the index is derived and can always be rebuilt from it.
"""
