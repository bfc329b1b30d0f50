"""Importing loans from CSV and XLSX files, all or nothing.

A file with any problem writes nothing; the report names every problem by the row number the
user sees in the spreadsheet (the header is row 1) and the column header as written in the
file. Re-importing a file updates a loan found by its contract number: its state (balance, days
past due, interest in arrears, status, risk class, settlement and restructuring dates), its
managing officer, empty terms (purpose, origination people) and the borrower's contact details
and rating; the loan's identity and terms must agree with what is stored.

The modules, in the order a file goes through them:

- ``columns``: ``COLUMNS``, the one description of every column (headers, kind, help, where the
  value goes and what it means on re-import), and the sample file;
- ``read``: the file's type told by its content, its header row and rows of raw cells;
- ``cells``: one cell into the value its column means;
- ``validate``: every row checked against the others and the database;
- ``apply``: what the checked rows write, and writing it in the caller's transaction;
- ``report``: the problems, counts and changes the page and the command show.

The page (``views.import_page``, its form in ``forms``) and the command (``flask loans import``)
call ``import_loans`` and commit or roll back.
"""
from .apply import apply_import, import_loans, plan_import

__all__ = ["apply_import", "import_loans", "plan_import"]
