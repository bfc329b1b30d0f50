"""Shared helpers of the post-loan tests (plain functions; call them inside an app context)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from portal.extensions import db

from tests.helpers.web import csrf_token

# A Monday: "due this week" runs until Sunday 2024-06-09.
AS_OF = date(2024, 6, 3)

# The smallest valid PNG (1×1), for attachment uploads.
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
       b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def rows(model, **filters):
    return list(db.session.execute(select(model).filter_by(**filters).order_by(model.id)).scalars())


def one(model, **filters):
    found = rows(model, **filters)
    assert len(found) == 1, f"expected one {model.__name__} with {filters}, found {len(found)}"
    return found[0]


def run_daily(as_of: date = AS_OF):
    from portal.postloan.daily import run_daily as run
    changes = run(as_of)
    db.session.commit()
    return changes


def complete(insp, actor, inspected_on: date, problems: dict | None = None, conclusion: str = "借款人经营正常,资金按约使用。"):
    """Record and submit an inspection with every checklist item answered."""
    from portal.postloan.inspections import findings_for_form, save_inspection
    from portal.rules.lookup import rules_for
    problems = problems or {}
    results = {row["code"]: ("problem", problems[row["code"]]) if row["code"] in problems else ("ok", "")
               for row in findings_for_form(insp, rules_for(insp.loan))}
    save_inspection(actor, insp, method="on_site", inspected_on=inspected_on, results=results,
                    conclusion=conclusion, submit=True)
    db.session.commit()
    return insp


def post(client, path: str, data: dict | None = None, **kwargs):
    payload = dict(data or {})
    payload["csrf_token"] = csrf_token(client, "/postloan/inspections")
    return client.post(path, data=payload, **kwargs)
