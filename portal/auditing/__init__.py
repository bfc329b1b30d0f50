"""The auditors' workspace (稽核): archive completeness, fixity seen from the auditor's side,
archive inspections, dashboards and report exports.

- ``completeness``: which documents each loan's file must hold (the union's plugin checklist)
  against what it holds, set-based for a whole union; the daily completeness snapshots.
- ``fixity``: the latest ``flask archive verify`` results per object, when each object was last
  verified, and verifying one institution's files (through ``portal.archive.fixity``).
- ``inspections``: the archive inspections the rules' cycle requires, recorded with findings and
  a stored random sample of credit files; overdue ones flagged.
- ``dashboards`` and ``charts``: each role's panels, charts rendered to SVG on the server.
- ``exports``: the reports as PDF (``render_pdf``) and Excel (openpyxl), built from the same
  functions as the pages.
- ``views``, ``forms``, ``cli``: pages under ``/audit`` and ``flask audit …``.

The audit trail itself (``audit_event``) is ``portal.audit_trail``; nothing here writes to other
packages' tables except through their services.
"""
