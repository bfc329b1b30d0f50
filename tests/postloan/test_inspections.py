"""Inspections: due dates from the rules, special inspections at once, recording, sign-off by the
roles the plugin names, escalation to the county's queue, the report PDF in the credit file."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from portal.extensions import db
from portal.postloan.models import Inspection, PostloanFile, RiskWarning
from portal.timeutil import local_today

from tests.helpers.files import pdf_text

from .postloan_helpers import AS_OF, PNG, complete, one, post, rows, run_daily


def test_first_inspection_due_seven_days_or_three_for_self_payment(app, org, make_loan):
    with app.app_context():
        entrusted = make_loan(org.inst("B1"), org.user("officer"), disbursed_on=date(2024, 5, 20))
        self_paid = make_loan(org.inst("B1"), org.user("officer"), disbursed_on=date(2024, 5, 20), payment_method="self")
        db.session.commit()
        run_daily()
        assert one(Inspection, loan_id=entrusted.id, kind="first").due_on == date(2024, 5, 27)
        assert one(Inspection, loan_id=self_paid.id, kind="first").due_on == date(2024, 5, 23)
        # No routine inspection before any inspection has been done.
        assert rows(Inspection, loan_id=entrusted.id, kind="routine") == []


RATING_INTERVALS = {"AAA": 180, "AA": 180, "A": 90, "BBB": 90, "BB": 60, "CCC": 60, "unrated": 60}


def test_routine_interval_by_rating_counts_from_the_last_inspection(app, org, make_loan):
    from portal.postloan.inspections import create_inspection
    with app.app_context():
        loans = {rating: make_loan(org.inst("B1"), org.user("officer"), credit_rating=rating,
                                   disbursed_on=date(2024, 3, 1)) for rating in RATING_INTERVALS}
        db.session.commit()
        for rating, loan in loans.items():
            complete(one(Inspection, loan_id=loan.id, kind="first"), org.user("officer"), date(2024, 3, 6))
            assert one(Inspection, loan_id=loan.id, kind="routine").due_on == \
                date(2024, 3, 6) + timedelta(days=RATING_INTERVALS[rating]), rating
        # A later inspection of any kind moves the clock.
        loan = loans["BBB"]
        special = create_inspection(org.user("officer"), loan, "special")
        db.session.commit()
        complete(special, org.user("officer"), date(2024, 4, 1))
        assert one(Inspection, loan_id=loan.id, kind="routine").due_on == date(2024, 6, 30)


def test_rating_change_redates_the_routine_inspection_on_the_daily_run(app, org, make_loan):
    with app.app_context():
        loan = make_loan(org.inst("B1"), org.user("officer"), credit_rating="AA", disbursed_on=date(2024, 3, 1))
        db.session.commit()
        complete(one(Inspection, loan_id=loan.id, kind="first"), org.user("officer"), date(2024, 3, 5))
        assert one(Inspection, loan_id=loan.id, kind="routine").due_on == date(2024, 9, 1)
        loan.borrower.credit_rating = "BB"
        db.session.commit()
        run_daily()
        assert one(Inspection, loan_id=loan.id, kind="routine").due_on == date(2024, 5, 4)
        # …and the downgrade is an early warning.
        assert rows(RiskWarning, loan_id=loan.id, signal="rating_downgrade") == []  # no earlier snapshot yet
        loan.borrower.credit_rating = "B"
        db.session.commit()
        run_daily(AS_OF + timedelta(days=1))
        assert one(RiskWarning, loan_id=loan.id, signal="rating_downgrade").details == "BB → B"


def test_numbers_come_from_the_union_settings(app, org, make_loan):
    from portal.rules.services import update_union_settings
    with app.app_context():
        update_union_settings(org.user("union_admin"), org.inst("P"), {
            "first_inspection_days": "10", "first_inspection_days_self_pay": "2", "routine_interval_days_a_bbb": "45"})
        db.session.commit()
        loan = make_loan(org.inst("B1"), org.user("officer"), credit_rating="A", disbursed_on=date(2024, 5, 1))
        self_paid = make_loan(org.inst("B1"), org.user("officer"), disbursed_on=date(2024, 5, 1), payment_method="self")
        db.session.commit()
        assert one(Inspection, loan_id=loan.id, kind="first").due_on == date(2024, 5, 11)
        assert one(Inspection, loan_id=self_paid.id, kind="first").due_on == date(2024, 5, 3)
        complete(one(Inspection, loan_id=loan.id, kind="first"), org.user("officer"), date(2024, 5, 8))
        assert one(Inspection, loan_id=loan.id, kind="routine").due_on == date(2024, 6, 22)


def test_special_inspection_raised_at_once_when_a_loan_goes_overdue(app, org, make_loan):
    with app.app_context():
        loan = make_loan(org.inst("B1"), org.user("officer"))
        db.session.commit()
        assert rows(Inspection, loan_id=loan.id, kind="special") == []
        # An update (as an import does) makes the loan overdue: no daily run needed.
        loan.days_past_due, loan.status = 3, "overdue"
        db.session.commit()
        special = one(Inspection, loan_id=loan.id, kind="special")
        assert special.reasons == ["overdue"] and special.due_on == local_today() and special.officer_id == loan.officer_id
        assert one(RiskWarning, loan_id=loan.id, signal="overdue").status == "open"
        # Interest falls into arrears too: the special inspection not yet done takes the new reason.
        loan.interest_arrears_fen = 12_000
        db.session.commit()
        assert one(Inspection, loan_id=loan.id, kind="special").reasons == ["overdue", "interest_arrears"]
        assert one(RiskWarning, loan_id=loan.id, signal="interest_arrears").status == "open"
        # Back to current: the rule warnings are lifted with the reason.
        loan.days_past_due, loan.interest_arrears_fen, loan.status = 0, 0, "active"
        db.session.commit()
        assert {w.status for w in rows(RiskWarning, loan_id=loan.id)} == {"lifted"}


def test_daily_run_raises_special_inspection_for_loans_already_overdue(app, org, make_loan):
    with app.app_context():
        loan = make_loan(org.inst("B1"), org.user("officer"), days_past_due=45, status="overdue")
        db.session.commit()
        # As if the loan had been written straight into the table, past the update hook.
        from portal.postloan.models import LoanCondition, WarningAction
        for model in (WarningAction, RiskWarning, LoanCondition):
            db.session.execute(db.delete(model))
        db.session.execute(db.delete(Inspection).where(Inspection.kind == "special"))
        db.session.commit()
        run_daily()
        special = one(Inspection, loan_id=loan.id, kind="special")
        assert special.due_on == AS_OF and special.reasons == ["overdue"]


@pytest.fixture()
def submitted_inspection(app, org, make_loan):
    """``submitted_inspection(amount_fen=…, officer=…, branch=…, **fields)``: a loan whose first
    inspection is completed and submitted; the ids of both."""
    def make(amount_fen=5_000_000, officer="officer", branch="B1", **fields):
        with app.app_context():
            loan = make_loan(org.inst(branch), org.user(officer), amount_fen=amount_fen, balance_fen=amount_fen,
                             borrower_name="张三丰", disbursed_on=date(2024, 3, 1), **fields)
            db.session.commit()
            insp = complete(one(Inspection, loan_id=loan.id, kind="first"), org.user(officer), date(2024, 3, 6))
            return loan.id, insp.id
    return make


def test_walkthrough_officer_records_director_signs_off_report_in_credit_file(app, client, org, login, make_loan):
    with app.app_context():
        loan = make_loan(org.inst("B1"), org.user("officer"), borrower_name="王建国", disbursed_on=date(2024, 3, 1))
        db.session.commit()
        insp_id, loan_id = one(Inspection, loan_id=loan.id, kind="first").id, loan.id
        from portal.rules.lookup import rules_for
        codes = [c.code for c in rules_for(loan).inspection_checklist()]
    login(client, "officer")
    page = client.get("/postloan/inspections?view=mine").get_data(as_text=True)
    assert "王建国" in page and f"/postloan/inspections/{insp_id}" in page
    form = client.get(f"/postloan/inspections/{insp_id}").get_data(as_text=True)
    assert "贷款用途及资金流向" in form  # the plugin's checklist labels
    data = {"method": "on_site", "inspected_on": "2024-03-06", "conclusion": "资金已按约定用于购买化肥,经营正常。",
            "action": "submit"}
    data.update({f"result-{c}": "ok" for c in codes})
    # An incomplete submission is refused and changes nothing.
    refused = post(client, f"/postloan/inspections/{insp_id}/record", {**data, f"result-{codes[0]}": ""})
    assert refused.status_code == 422
    with app.app_context():
        assert db.session.get(Inspection, insp_id).status == "open"
    assert post(client, f"/postloan/inspections/{insp_id}/record", data).status_code == 302
    assert post(client, f"/postloan/inspections/{insp_id}/attachments",
                {"files": (__import__("io").BytesIO(PNG), "现场照片.png")},
                content_type="multipart/form-data").status_code == 302
    # The officer cannot sign off (the baseline names the branch director).
    assert post(client, f"/postloan/inspections/{insp_id}/sign-off", {"opinion": "同意"}).status_code == 403

    director = app.test_client()
    login(director, "director")
    queue = director.get("/postloan/inspections?view=branch").get_data(as_text=True)
    assert "Reports waiting for your sign-off" in queue
    assert post(director, f"/postloan/inspections/{insp_id}/sign-off", {"opinion": "同意,继续跟踪。"}).status_code == 302
    with app.app_context():
        insp = db.session.get(Inspection, insp_id)
        assert insp.status == "signed_off" and insp.escalation_status == "none"
        report = insp.report_file
        assert report.doc_type == "first_visit" and report.media_type == "application/pdf"
        from portal.archive.models import Document
        docs = rows(Document, loan_id=loan_id)
        assert {d.doc_type for d in docs} == {"first_visit"} and len(docs) == 2  # the report and the photo
        assert report.archive_document_id in {d.id for d in docs}
        assert all(f.archive_document_id for f in rows(PostloanFile, owner_kind="inspection", owner_id=insp_id))
    pdf = director.get(f"/postloan/inspections/{insp_id}/report.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = pdf_text(pdf.data)
    assert "王建国" in text and "首次检查记录" in text and "贷款用途及资金流向" in text


def test_recorder_cannot_sign_off_own_inspection_and_other_roles_get_403(app, client, org, login, make_loan):
    with app.app_context():
        loan = make_loan(org.inst("B1"), org.user("director"), disbursed_on=date(2024, 3, 1))
        db.session.commit()
        insp = complete(one(Inspection, loan_id=loan.id, kind="first"), org.user("director"), date(2024, 3, 6))
        insp_id = insp.id
    for name in ("director", "post_loan", "auditor", "county_director"):
        other = app.test_client()
        login(other, name)
        assert post(other, f"/postloan/inspections/{insp_id}/sign-off").status_code == 403, name
    with app.app_context():
        assert db.session.get(Inspection, insp_id).status == "submitted"


def test_out_of_scope_inspection_is_404(app, client, org, login, submitted_inspection):
    _loan_id, insp_id = submitted_inspection(officer="officer2", branch="B2")
    login(client, "officer")
    assert client.get(f"/postloan/inspections/{insp_id}").status_code == 404
    assert post(client, f"/postloan/inspections/{insp_id}/record", {"action": "save"}).status_code == 404
    assert client.get(f"/postloan/inspections/{insp_id}/report.pdf").status_code == 404
    director = app.test_client()
    login(director, "director")
    assert post(director, f"/postloan/inspections/{insp_id}/sign-off").status_code == 404


def test_large_loan_escalates_to_the_county_queue(app, client, org, login, submitted_inspection):
    big_loan, big = submitted_inspection(amount_fen=50_000_000)          # 50万元: escalated
    _small_loan, small = submitted_inspection(amount_fen=49_999_900)    # just under
    director = app.test_client()
    login(director, "director")
    for insp_id in (big, small):
        assert post(director, f"/postloan/inspections/{insp_id}/sign-off", {"opinion": "同意"}).status_code == 302
    with app.app_context():
        assert db.session.get(Inspection, small).escalation_status == "none"
        escalated = db.session.get(Inspection, big)
        assert escalated.escalation_status == "pending" and escalated.escalation_institution_id == org.inst("C1").id
        assert escalated.escalation_department == "信贷科"
    login(client, "county_director")
    queue = client.get("/postloan/inspections?view=branch").get_data(as_text=True)
    assert "Reports escalated to your department" in queue and f"/postloan/inspections/{big}" in queue
    # The branch director is not the county's credit department.
    assert post(director, f"/postloan/inspections/{big}/escalation-review", {"opinion": "已阅"}).status_code == 403
    assert post(client, f"/postloan/inspections/{big}/escalation-review", {"opinion": "已阅,关注担保人。"}).status_code == 302
    with app.app_context():
        assert db.session.get(Inspection, big).escalation_status == "reviewed"


def test_waiting_counts_equal_the_queues_and_show_on_the_home_card(app, client, org, login, submitted_inspection):
    """The home card counts the queues without reading them when nothing waits; when something
    does, its numbers are the queues' lengths, whoever asks."""
    from portal.postloan.inspections import escalation_queue, queue_lengths, sign_off_queue

    def both(name):
        with app.app_context():
            user = org.user(name)
            counted = queue_lengths(user)
            assert counted == (len(sign_off_queue(user)), len(escalation_queue(user))), name
            return counted

    assert both("director") == (0, 0) and both("county_director") == (0, 0)
    import portal.postloan.inspections as inspections

    def unread(_user):
        raise AssertionError("a queue was read although nothing waits")

    with pytest.MonkeyPatch.context() as patch, app.app_context():
        patch.setattr(inspections, "sign_off_queue", unread)
        patch.setattr(inspections, "escalation_queue", unread)
        assert queue_lengths(org.user("director")) == (0, 0)
    _big_loan, big = submitted_inspection(amount_fen=50_000_000)
    submitted_inspection(amount_fen=1_000_000)
    submitted_inspection(officer="officer2", branch="B2")
    assert both("director") == (2, 0)        # B1's two, not B2's
    assert both("officer") == (0, 0)         # the recorder signs off nothing
    login(client, "director")
    card = client.get("/").get_data(as_text=True).split('id="postloan-due"', 1)[1].split("</div></div>", 1)[0]
    assert "Reports to sign off or review" in card and '<span class="xd-stat">2</span>' in card
    assert post(client, f"/postloan/inspections/{big}/sign-off", {"opinion": "同意"}).status_code == 302
    assert both("director") == (1, 0)
    county = both("county_director")
    assert county[1] == 1
    other = app.test_client()
    login(other, "county_director")
    assert "Reports to sign off or review" in other.get("/").get_data(as_text=True)


def test_escalation_threshold_is_a_setting(app, org, submitted_inspection):
    from portal.rules.services import update_union_settings
    from portal.postloan.inspections import sign_off_inspection
    with app.app_context():
        update_union_settings(org.user("union_admin"), org.inst("P"), {"escalation_threshold_yuan": "200000"})
        db.session.commit()
    _loan, insp_id = submitted_inspection(amount_fen=20_000_000)
    with app.app_context():
        insp = sign_off_inspection(org.user("director"), db.session.get(Inspection, insp_id), "")
        db.session.commit()
        assert insp.escalation_status == "pending"


def test_director_returns_an_inspection_for_correction(app, client, org, login, submitted_inspection):
    _loan, insp_id = submitted_inspection()
    login(client, "director")
    assert post(client, f"/postloan/inspections/{insp_id}/return", {"reason": ""}).status_code == 422
    assert post(client, f"/postloan/inspections/{insp_id}/return", {"reason": "补充抵押物照片"}).status_code == 302
    with app.app_context():
        insp = db.session.get(Inspection, insp_id)
        assert insp.status == "draft" and insp.returned_reason == "补充抵押物照片"


def test_problem_findings_raise_warnings(app, org, make_loan):
    with app.app_context():
        loan = make_loan(org.inst("B1"), org.user("officer"), disbursed_on=date(2024, 3, 1))
        db.session.commit()
        complete(one(Inspection, loan_id=loan.id, kind="first"), org.user("officer"), date(2024, 3, 6),
                 problems={"use_of_funds": "部分资金用于购车", "contact": "电话停机"})
        signals = {w.signal: w for w in rows(RiskWarning, loan_id=loan.id)}
        assert set(signals) == {"misuse_of_funds", "lost_contact"}
        assert signals["misuse_of_funds"].source == "inspection" and "部分资金用于购车" in signals["misuse_of_funds"].details


def test_calendar_and_due_lists(app, client, org, login, make_loan):
    today = local_today()
    with app.app_context():
        overdue = make_loan(org.inst("B1"), org.user("officer"), borrower_name="逾期检查户",
                            disbursed_on=today - timedelta(days=30))
        soon = make_loan(org.inst("B1"), org.user("officer"), borrower_name="本周检查户", disbursed_on=today - timedelta(days=7))
        db.session.commit()
        due_soon = one(Inspection, loan_id=soon.id, kind="first").due_on
        assert due_soon == today
    login(client, "officer")
    page = client.get("/postloan/inspections").get_data(as_text=True)
    overdue_part, rest = page.split('id="this-week"', 1)
    assert "逾期检查户" in overdue_part.split('id="overdue"', 1)[1] and "本周检查户" in rest.split('id="awaiting"')[0]
    cal = client.get(f"/postloan/inspections/calendar?month={today:%Y-%m}")
    assert cal.status_code == 200 and "本周检查户" in cal.get_data(as_text=True)


@pytest.mark.parametrize("plugin", ["hunan", "shandong", "template"])
def test_province_plugins_drive_the_schedule_checklist_and_escalation(app, plugin, make_loan, make_org):
    from portal.loans.services import loan_facts
    from portal.rules.lookup import rules_for
    from portal.postloan.inspections import findings_for_form, sign_off_inspection
    with app.app_context():
        org = make_org(plugin)
        loan = make_loan(org.inst("B1"), org.user("officer"), amount_fen=80_000_000, balance_fen=80_000_000,
                         credit_rating="BBB", payment_method="self", disbursed_on=date(2024, 3, 1))
        db.session.commit()
        rules = rules_for(loan)
        facts = loan_facts(loan)
        first = one(Inspection, loan_id=loan.id, kind="first")
        assert first.due_on == rules.first_inspection_due(facts)
        assert [f["code"] for f in findings_for_form(first, rules)] == [c.code for c in rules.inspection_checklist()]
        complete(first, org.user("officer"), date(2024, 3, 4))
        routine = one(Inspection, loan_id=loan.id, kind="routine")
        assert routine.due_on == date(2024, 3, 4) + timedelta(days=rules.routine_inspection_interval(facts))
        sign_off_inspection(org.user("director"), first, "")
        db.session.commit()
        expected = rules.inspection_escalation(facts)
        assert first.escalation_status == ("pending" if expected.required else "none")
        if expected.required:
            assert first.escalation_department == expected.department
