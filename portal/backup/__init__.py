"""Backup and restore of a whole deployment (``flask backup create|verify|restore``).

- ``services``: the dump of every table as JSON lines (portable between SQLite and PostgreSQL),
  a copy of every stored object under its key, the manifest with a SHA-256 of every file and
  the rows of every table; verifying a backup; restoring it into an empty deployment.
- ``cli``: the commands, which only call the services and report.

The search index is not copied: it is derived from the database (the extracted text is in
the ``document_text`` table), and a restore marks it for rebuilding. See ``docs/backup.md``.
"""
