"""`flask audit completeness | inspections`: the same numbers as the pages, the files they write,
and the daily snapshot behind the trend."""
from __future__ import annotations

import io
import json
import re
from datetime import timedelta

from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select, update

from portal.accounts.models import Institution
from portal.auditing.models import CompletenessSnapshot
from portal.extensions import db
from portal.timeutil import utcnow


def test_completeness_json_pdf_xlsx_and_snapshot(app, runner, known_gaps, tmp_path):
    pdf, xlsx = tmp_path / "c1.pdf", tmp_path / "c1.xlsx"
    result = runner.invoke(args=["audit", "completeness", "--institution", "C1", "--json", "--pdf", str(pdf),
                                 "--xlsx", str(xlsx)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["files"], data["complete"], data["rate"], data["missing_documents"]) == (7, 3, 42.9, 6)
    rows = {row["code"]: row for row in data["institutions"]}
    assert (rows["B1"]["rate"], rows["B2"]["rate"]) == (33.3, 50.0)
    reported = {(loan["contract_no"], gap["type"], gap["stage"], gap["due_since"])
                for loan in data["incomplete_loans"] for gap in loan["missing"]}
    assert reported == {(c, t, s, d.isoformat()) for c, t, s, d in known_gaps.gaps}
    text = re.sub(r"\s+", "", "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.read_bytes())).pages))
    assert "测试县联社" in text and "33.3%" in text and "50.0%" in text
    sheet = load_workbook(xlsx).worksheets[0]
    assert {r[0]: r[6] for r in sheet.iter_rows(min_row=3, values_only=True)} == {"C1": 42.9, "B1": 33.3, "B2": 50.0}
    with app.app_context():
        snaps = {s.institution.code: (s.files, s.complete, s.missing_documents)
                 for s in db.session.execute(select(CompletenessSnapshot)).scalars()}
        assert snaps == {"B1": (3, 1, 4), "B2": (4, 2, 2)}


def test_without_institution_every_union_is_audited(app, runner, known_gaps):
    result = runner.invoke(args=["audit", "completeness"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^P .*: 3/7 files complete \(42\.9%\), 6 documents missing", result.output, re.M)
    assert re.search(r"^    B1 城关信用社: 1/3 \(33\.3%\), 4 missing", result.output, re.M)
    assert re.search(r"^Q .*: 0/1 files complete", result.output, re.M)
    with app.app_context():
        assert db.session.execute(select(CompletenessSnapshot)).scalars().all().__len__() == 3   # B1, B2, E1
    again = runner.invoke(args=["audit", "completeness", "--no-snapshot", "--institution", "B1"])
    assert again.exit_code == 0 and "1/3" in again.output
    refused = runner.invoke(args=["audit", "completeness", "--pdf", "x.pdf"])
    assert refused.exit_code == 2 and "--institution" in refused.output
    unknown = runner.invoke(args=["audit", "completeness", "--institution", "NOPE"])
    assert unknown.exit_code == 2


def test_inspections_command_flags_overdue_ones(app, runner, known_gaps):
    ok = runner.invoke(args=["audit", "inspections", "--institution", "C1", "--overdue"])
    assert ok.exit_code == 0 and "0 overdue" in ok.output
    with app.app_context():
        db.session.execute(update(Institution).values(created_at=utcnow() - timedelta(days=400)))
        db.session.commit()
    late = runner.invoke(args=["audit", "inspections", "--institution", "C1", "--overdue", "--json"])
    assert late.exit_code == 1
    rows = json.loads(late.output)
    assert {(r["inspector"], r["branch"]) for r in rows} == {("C1", "B1"), ("C1", "B2"), ("B1", "B1"), ("B2", "B2")}
