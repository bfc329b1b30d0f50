"""Archive inspections: the schedule from the plugin's cycle, overdue ones flagged, a stored
random sample, recording with findings, and only the recorder changing a draft."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.accounts.models import Institution
from portal.accounts.services import create_user
from portal.auditing.inspections import archive_inspection_schedule
from portal.auditing.models import ArchiveInspection, ArchiveInspectionFile
from portal.audit_trail import AuditEvent
from portal.extensions import db
from portal.timeutil import local_today, utcnow

from tests.helpers.factories import PASSWORD

from .auditing_helpers import add_doc


@pytest.fixture()
def org_with_files(app, make_org, make_loan):
    """``org_with_files(age_days=0, plugin=None, settings=None)``: the test tree with 6 borrowers
    in B1 and 2 in B2, institutions added ``age_days`` ago; the ids of P, C1, B1 and B2."""
    def make(*, age_days: int = 0, plugin=None, settings=None) -> dict:
        with app.app_context():
            org = make_org(plugin=plugin)
            if settings:
                org.inst("P").rules_settings = settings
            for i in range(6):
                loan = make_loan(org.inst("B1"), org.user("officer"))
                if i == 0:
                    add_doc(loan, "loan_contract")
            for _ in range(2):
                make_loan(org.inst("B2"), org.user("officer2"))
            create_user(None, "county_auditor2", PASSWORD, "C1", ["auditor"], display_name="第二稽核")
            if age_days:
                db.session.execute(update(Institution).values(created_at=utcnow() - timedelta(days=age_days)))
            db.session.commit()
            return {code: org.inst(code).id for code in ("P", "C1", "B1", "B2")} | {"org": org}
    return make


@pytest.fixture()
def post(csrf_token):
    """``post(client, path, data)``: a form of the inspection pages, with its CSRF token."""
    def make(client, path, data):
        return client.post(path, data={"csrf_token": csrf_token(client, "/audit/inspections"), **data})
    return make


def test_schedule_follows_the_plugin_cycle_and_flags_overdue_ones(app, org_with_files):
    ids = org_with_files(age_days=200)
    with app.app_context():
        today = local_today()
        schedule = archive_inspection_schedule(db.session.get(Institution, ids["P"]), today)
        pairs = {(r.inspector.code, r.target.code): r for r in schedule.rows}
        assert set(pairs) == {("C1", "B1"), ("C1", "B2"), ("B1", "B1"), ("B2", "B2")}
        assert pairs[("C1", "B1")].cycle_months == 12 and pairs[("B1", "B1")].cycle_months == 6
        # Added 200 days ago: the branches' own six-monthly check is overdue, the county's yearly one not yet.
        assert {(r.inspector.code, r.target.code) for r in schedule.overdue} == {("B1", "B1"), ("B2", "B2")}
        # A branch's view has its own check and its county's.
        mine = archive_inspection_schedule(db.session.get(Institution, ids["B1"]), today)
        assert {(r.inspector.code, r.target.code) for r in mine.rows} == {("C1", "B1"), ("B1", "B1")}


def test_a_union_setting_changes_the_cycle(app, org_with_files):
    ids = org_with_files(age_days=100, settings={"archive_inspection_months_branch": 3,
                                                       "archive_inspection_months_county": 0})
    with app.app_context():
        schedule = archive_inspection_schedule(db.session.get(Institution, ids["P"]))
        assert {(r.inspector.code, r.cycle_months) for r in schedule.rows} == {("B1", 3), ("B2", 3)}
        assert len(schedule.overdue) == 2


def test_county_auditor_records_an_inspection_with_a_stored_sample(app, client, login, org_with_files, post):
    ids = org_with_files(age_days=400)
    login(client, "county_auditor")
    page = client.get(f"/audit/inspections?institution={ids['C1']}").get_data(as_text=True)
    assert re.search(r'data-target="B1" data-inspector="C1" class="table-danger"', page)
    response = post(client, "/audit/inspections/new", {"target": ids["B1"], "sample_size": 4})
    assert response.status_code == 303
    inspection_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        insp = db.session.get(ArchiveInspection, inspection_id)
        sample = [f.borrower_id for f in insp.files]
        assert len(sample) == 4 and len(set(sample)) == 4 and insp.level == "county"
        from portal.loans.models import Loan
        b1_borrowers = set(db.session.execute(select(Loan.borrower_id).where(Loan.branch_id == ids["B1"])).scalars())
        assert set(sample) <= b1_borrowers
        file_ids = [f.id for f in insp.files]
    # Starting again returns the same draft with the same (stored) sample.
    again = post(client, "/audit/inspections/new", {"target": ids["B1"], "sample_size": 4})
    assert again.headers["Location"].endswith(f"/audit/inspections/{inspection_id}")
    detail = client.get(f"/audit/inspections/{inspection_id}").get_data(as_text=True)
    assert len(re.findall(r'<tr data-borrower="\d+">', detail)) == 4
    # Completing needs every result, the date, findings and conclusion.
    incomplete = post(client, f"/audit/inspections/{inspection_id}", {"action": "complete", "findings": ""})
    assert incomplete.status_code == 422
    assert "Give a result for every sampled credit file" in incomplete.get_data(as_text=True)
    today = local_today()
    data = {"action": "complete", "inspected_on": today.isoformat(), "conclusion": "deficient",
            "findings": "抽查4份档案,1份缺少借款合同。"}
    data.update({f"result-{i}": "ok" for i in file_ids})
    data[f"result-{file_ids[0]}"] = "problem"
    data[f"note-{file_ids[0]}"] = "缺借款合同"
    done = post(client, f"/audit/inspections/{inspection_id}", data)
    assert done.status_code == 303
    with app.app_context():
        insp = db.session.get(ArchiveInspection, inspection_id)
        assert insp.state == "completed" and insp.inspected_on == today and insp.conclusion == "deficient"
        assert all(f.missing_documents is not None and f.missing_documents > 0 for f in insp.files)
        actions = [e.action for e in db.session.execute(select(AuditEvent).where(
            AuditEvent.object_type == "archive_inspection").order_by(AuditEvent.seq)).scalars()]
        assert actions == ["audit.archive_inspection_start", "audit.archive_inspection_complete"]
        schedule = archive_inspection_schedule(db.session.get(Institution, ids["C1"]), today)
        row = next(r for r in schedule.rows if r.inspector.code == "C1" and r.target.code == "B1")
        assert row.last_completed.id == inspection_id and not row.overdue(today)
        assert row.due_on.year == today.year + 1
    page = client.get(f"/audit/inspections?institution={ids['C1']}").get_data(as_text=True)
    assert not re.search(r'data-target="B1" data-inspector="C1" class="table-danger"', page)
    # Final: no more changes, even by its recorder.
    assert post(client, f"/audit/inspections/{inspection_id}", {"action": "save", "findings": "x"}).status_code == 409


def test_only_the_recorder_changes_a_draft(app, client, login, org_with_files, post):
    ids = org_with_files()
    login(client, "county_auditor")
    inspection_id = int(post(client, "/audit/inspections/new", {"target": ids["B2"], "sample_size": 1})
                        .headers["Location"].rsplit("/", 1)[1])
    other = app.test_client()
    login(other, "county_auditor2")
    assert other.get(f"/audit/inspections/{inspection_id}").status_code == 200      # reads it
    assert post(other, f"/audit/inspections/{inspection_id}", {"action": "save", "findings": "改"}).status_code == 403
    assert post(other, f"/audit/inspections/{inspection_id}/cancel", {"reason": "x"}).status_code == 403
    assert post(other, "/audit/inspections/new", {"target": ids["B2"]}).status_code == 409   # one draft per pair
    branch = app.test_client()
    login(branch, "auditor")                                                       # auditor of B1
    assert branch.get(f"/audit/inspections/{inspection_id}").status_code == 404
    # The recorder saves a draft, then cancels it with a reason.
    assert post(client, f"/audit/inspections/{inspection_id}", {"action": "save", "findings": "初稿"}).status_code == 303
    assert post(client, f"/audit/inspections/{inspection_id}/cancel", {"reason": ""}).status_code == 422
    assert post(client, f"/audit/inspections/{inspection_id}/cancel", {"reason": "选错了信用社"}).status_code == 303
    with app.app_context():
        insp = db.session.get(ArchiveInspection, inspection_id)
        assert insp.state == "cancelled" and "初稿" in insp.findings


def test_who_inspects_whom(app, client, login, org_with_files, post):
    ids = org_with_files()
    login(client, "county_auditor")
    # A county does not inspect itself or another county's branch; a sample must be 1–50.
    assert post(client, "/audit/inspections/new", {"target": ids["C1"]}).status_code == 409
    assert post(client, "/audit/inspections/new", {"target": ids["B1"], "sample_size": 80}).status_code == 422
    with app.app_context():
        e1 = ids["org"].inst("E1").id
    assert post(client, "/audit/inspections/new", {"target": e1}).status_code == 404
    # A branch director does the branch's own check; an officer cannot record one.
    director = app.test_client()
    login(director, "director")
    response = post(director, "/audit/inspections/new", {"target": ids["B1"], "sample_size": 2})
    assert response.status_code == 303
    with app.app_context():
        insp = db.session.execute(select(ArchiveInspection).where(ArchiveInspection.level == "branch")).scalar_one()
        assert insp.inspector_institution_id == ids["B1"] and len(insp.files) == 2
    officer = app.test_client()
    login(officer, "officer")
    assert post(officer, "/audit/inspections/new", {"target": ids["B1"]}).status_code == 403
    assert officer.get("/audit/inspections").status_code == 403
    with app.app_context():
        assert db.session.execute(select(ArchiveInspectionFile)).scalars().all()
