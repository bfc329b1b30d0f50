"""Reading the post-loan forms. CSRF is checked for every POST by CSRFProtect; the checklist's
fields follow the union's plugin, so these forms are read from ``request.form`` by name and
validated by the services."""
from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from .common import parse_date


def inspection_form(form: MultiDict, codes: list[str]) -> dict:
    """method, inspected_on, conclusion and {code: (result, note)} for each checklist item."""
    return {
        "method": (form.get("method") or "").strip() or None,
        "inspected_on": parse_date(form.get("inspected_on"), _("Inspection date"), required=False),
        "results": {code: (form.get(f"result-{code}", ""), form.get(f"note-{code}", "")) for code in codes},
        "conclusion": form.get("conclusion", ""),
        "submit": form.get("action") == "submit",
    }


def month_arg(raw: str | None, today: date) -> tuple[int, int]:
    """``2024-06`` → (2024, 6); anything else is this month."""
    try:
        year, month = (int(x) for x in (raw or "").split("-", 1))
        if 1900 < year < 3000 and 1 <= month <= 12:
            return year, month
    except ValueError:
        pass
    return today.year, today.month


def checkbox(form: MultiDict, name: str) -> bool:
    return form.get(name) in ("1", "on", "true", "yes")
