"""Display names of the audit workspace's codes, registered with the portal's ``label`` filter."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l


AUDITING_LABELS: dict[str, dict[str, object]] = {
    "archive_inspection_state": {"draft": _l("Being recorded"), "completed": _l("Completed"),
                                 "cancelled": _l("Cancelled")},
    "archive_inspection_conclusion": {"satisfactory": _l("Meets the requirements"),
                                      "deficient": _l("Deficiencies found, to be corrected")},
    "inspection_file_result": {"ok": _l("In order"), "problem": _l("Problem found")},
    "fixity_problem": {"mismatch": _l("Checksum mismatch"), "missing": _l("Object missing from the store"),
                       "orphan": _l("Object no record claims")},
    "report": {"completeness": _l("Completeness audit"), "lending_register": _l("Lending register"),
               "destruction_lists": _l("Destruction lists"), "inspections": _l("Inspection overview"),
               "migration": _l("Overdue migration")},
}

