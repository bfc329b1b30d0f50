"""Overdue buckets, the daily collection list, the contact log, notices and the migration report."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from portal.extensions import db
from portal.postloan.models import BucketSnapshot, CollectionTask, ContactLog, LoanNotice
from portal.timeutil import local_today

from tests.helpers.files import pdf_text

from .postloan_helpers import AS_OF, one, post, rows, run_daily


BUCKETS = {0: "M0", 1: "M1", 30: "M1", 31: "M2", 60: "M2", 61: "M3", 90: "M3", 91: "M4", 180: "M4", 181: "M5",
           360: "M5", 361: "M6"}


def test_snapshot_bucket_follows_the_baseline_edges(app, org, make_loan):
    with app.app_context():
        loans = {dpd: make_loan(org.inst("B1"), org.user("officer"), days_past_due=dpd, balance_fen=123_400)
                 for dpd in BUCKETS}
        db.session.commit()
        run_daily()
        for dpd, bucket in BUCKETS.items():
            snap = one(BucketSnapshot, loan_id=loans[dpd].id, as_of=AS_OF)
            assert (snap.bucket, snap.balance_fen, snap.days_past_due) == (bucket, 123_400, dpd)


def test_bucket_edges_are_a_setting(app, org, make_loan):
    from portal.rules.services import update_union_settings
    with app.app_context():
        update_union_settings(org.user("union_admin"), org.inst("P"), {"overdue_bucket_edges": "15,30"})
        db.session.commit()
        loans = {dpd: make_loan(org.inst("B1"), org.user("officer"), days_past_due=dpd) for dpd in (10, 20, 31)}
        db.session.commit()
        run_daily()
        assert {dpd: one(BucketSnapshot, loan_id=l.id).bucket for dpd, l in loans.items()} == {10: "M1", 20: "M2", 31: "M3"}


def test_collection_list_and_contact_with_a_promise(app, client, org, login, make_loan):
    from portal.postloan.collection import collection_list
    today = local_today()
    with app.app_context():
        late = make_loan(org.inst("B1"), org.user("officer"), borrower_name="拖欠户", days_past_due=12, status="overdue")
        make_loan(org.inst("B1"), org.user("officer"), borrower_name="正常户")
        make_loan(org.inst("B2"), org.user("officer2"), borrower_name="别社户", days_past_due=3, status="overdue")
        db.session.commit()
        late_id = late.id
        assert one(CollectionTask, loan_id=late_id).status == "open"
    login(client, "officer")
    page = client.get("/postloan/collection").get_data(as_text=True)
    table = page.split('id="collection-table"', 1)[1].split("</table>", 1)[0]
    assert "拖欠户" in table and "正常户" not in table and "别社户" not in table
    promised = today + timedelta(days=5)
    assert post(client, f"/postloan/loans/{late_id}/contacts",
                {"contacted_on": today.isoformat(), "channel": "call", "result": "promised",
                 "promised_on": promised.isoformat(), "promised_amount": "2,000.50", "note": "答应卖粮后还款"}).status_code == 302
    with app.app_context():
        entry = one(ContactLog, loan_id=late_id)
        assert (entry.promised_on, entry.promised_amount_fen) == (promised, 200_050)
        officer = org.user("officer")
        assert [r.loan.id for r in collection_list(officer, today, officer_id=officer.id)] == []
        assert [r.loan.id for r in collection_list(officer, promised, officer_id=officer.id)] == [late_id]
    # A promise without a date is refused.
    assert post(client, f"/postloan/loans/{late_id}/contacts",
                {"contacted_on": today.isoformat(), "channel": "visit", "result": "promised"}).status_code == 422
    # Cured: the task closes.
    with app.app_context():
        from portal.loans.models import Loan
        loan = db.session.get(Loan, late_id)
        loan.days_past_due, loan.status = 0, "active"
        db.session.commit()
        assert one(CollectionTask, loan_id=late_id).close_reason == "cured"


def test_notices_fall_due_by_the_plugins_lead_days(app, org, make_loan):
    with app.app_context():
        maturing = make_loan(org.inst("B1"), org.user("officer"), maturity_on=AS_OF + timedelta(days=30))
        not_yet = make_loan(org.inst("B1"), org.user("officer"), maturity_on=AS_OF + timedelta(days=31))
        two_days = make_loan(org.inst("B1"), org.user("officer"), days_past_due=2, status="overdue")
        three_days = make_loan(org.inst("B1"), org.user("officer"), days_past_due=3, status="overdue")
        db.session.commit()
        run_daily()
        notice = one(LoanNotice, loan_id=maturing.id)
        assert (notice.kind, notice.reference_on, notice.due_on) == ("repayment", AS_OF + timedelta(days=30), AS_OF)
        assert rows(LoanNotice, loan_id=not_yet.id) == []
        assert rows(LoanNotice, loan_id=two_days.id) == []
        overdue = one(LoanNotice, loan_id=three_days.id)
        assert overdue.kind == "overdue" and overdue.due_on == AS_OF


def test_notice_lead_days_are_settings(app, org, make_loan):
    from portal.rules.services import update_union_settings
    with app.app_context():
        update_union_settings(org.user("union_admin"), org.inst("P"),
                              {"repayment_notice_lead_days": "10", "overdue_notice_after_days": "1"})
        db.session.commit()
        maturing = make_loan(org.inst("B1"), org.user("officer"), maturity_on=AS_OF + timedelta(days=20))
        late = make_loan(org.inst("B1"), org.user("officer"), days_past_due=1, status="overdue")
        db.session.commit()
        run_daily()
        assert rows(LoanNotice, loan_id=maturing.id) == []
        assert one(LoanNotice, loan_id=late.id).kind == "overdue"


def test_issuing_a_notice_makes_a_chinese_pdf_in_the_credit_file(app, client, org, login, make_loan):
    today = local_today()
    with app.app_context():
        loan = make_loan(org.inst("B1"), org.user("officer"), borrower_name="赵六", maturity_on=today + timedelta(days=10))
        db.session.commit()
        run_daily(today)
        notice_id, loan_id = one(LoanNotice, loan_id=loan.id).id, loan.id
    login(client, "officer")
    assert "赵六" in client.get("/postloan/notices").get_data(as_text=True)
    assert post(client, f"/postloan/notices/{notice_id}/issue").status_code == 302
    with app.app_context():
        notice = db.session.get(LoanNotice, notice_id)
        assert notice.status == "issued" and notice.issued_on == today
        from portal.archive.models import Document
        assert one(Document, loan_id=loan_id).doc_type == "repayment_notice"
        file_id = notice.file_id
    text = pdf_text(client.get(f"/postloan/files/{file_id}").data)
    assert "还本付息通知书" in text and "赵六" in text
    assert post(client, f"/postloan/notices/{notice_id}/issue").status_code == 409


def test_a_filed_notice_is_kept_once_and_goes_with_its_credit_file(app, client, org, login, make_loan):
    """The notice's bytes live only in the object store once filed; the archivist cannot discard
    the post-loan work's record; once the document is destroyed no copy is served."""
    from portal.archive.models import Document
    from portal.archive.storage import current_store
    from portal.postloan.models import PostloanFile
    from portal.timeutil import utcnow

    today = local_today()
    with app.app_context():
        loan = make_loan(org.inst("B1"), org.user("officer"), borrower_name="钱七", maturity_on=today + timedelta(days=10))
        db.session.commit()
        run_daily(today)
        notice_id = one(LoanNotice, loan_id=loan.id).id
    login(client, "officer")
    assert post(client, f"/postloan/notices/{notice_id}/issue").status_code == 302
    with app.app_context():
        record = db.session.get(PostloanFile, db.session.get(LoanNotice, notice_id).file_id)
        document = db.session.get(Document, record.archive_document_id)
        assert record.data is None and document.sha256 == record.sha256 and document.source == "generated"
        file_id, document_id = record.id, document.id
    archivist = app.test_client()
    login(archivist, "archivist")
    refused = post(archivist, f"/archive/documents/{document_id}/discard", {"reason": "重复件"})
    assert refused.status_code == 409 and "cannot be discarded" in refused.get_data(as_text=True)
    assert client.get(f"/postloan/files/{file_id}").status_code == 200
    with app.app_context():  # decades later: destroyed with its credit file
        document = db.session.get(Document, document_id)
        current_store().delete(document.object_key)
        document.state, document.removed_at = "destroyed", utcnow()
        db.session.commit()
    gone = client.get(f"/postloan/files/{file_id}")
    assert gone.status_code == 409 and "no copy is kept" in gone.get_data(as_text=True)


def test_migration_matrix_between_two_dates_per_branch_and_union(app, client, org, login, make_loan):
    from portal.postloan.collection import migration_report
    start, end = date(2024, 5, 1), date(2024, 6, 1)
    with app.app_context():
        b1, b2 = org.inst("B1"), org.inst("B2")
        current = make_loan(b1, org.user("officer"), balance_fen=100_00)
        worse = make_loan(b1, org.user("officer"), balance_fen=200_00, days_past_due=10, status="overdue")
        cured = make_loan(b1, org.user("officer"), balance_fen=300_00, days_past_due=5, status="overdue")
        repaid = make_loan(b1, org.user("officer"), balance_fen=500_00, days_past_due=20, status="overdue")
        other = make_loan(b2, org.user("officer2"), balance_fen=1_000_00, days_past_due=25, status="overdue")
        db.session.commit()
        run_daily(start)
        worse.days_past_due = 40
        cured.days_past_due, cured.status = 0, "active"
        repaid.status, repaid.balance_fen, repaid.days_past_due = "settled", 0, 0
        db.session.commit()
        run_daily(end)
        branch = migration_report(org.user("director"), b1, start, end)
        assert branch.rows["M1"] == (3, 1_000_00) and branch.rows["M0"] == (1, 100_00)
        assert branch.cells[("M1", "M2")] == (1, 200_00) and branch.rate("M1", "M2") == Decimal("20.00")
        assert branch.rate("M1", "M0") == Decimal("30.00") and branch.rate("M1", "settled") == Decimal("50.00")
        assert branch.rate("M0", "M0") == Decimal("100.00")
        assert branch.conversion(["M1"]) == Decimal("80.00") and branch.targets["M1"] == 90
        union = migration_report(org.user("union_admin"), org.inst("P"), start, end)
        assert union.rows["M1"] == (4, 2_000_00) and union.rate("M1", "M1") == Decimal("50.00")
        # A branch director asking for the union sees only their own branch's loans.
        assert migration_report(org.user("director"), org.inst("P"), start, end).rows["M1"] == (3, 1_000_00)
        p_id = org.inst("P").id
    login(client, "union_admin")
    page = client.get(f"/postloan/migration?institution={p_id}&start={start}&end={end}")
    assert page.status_code == 200 and 'data-from="M1" data-to="M2"' in page.get_data(as_text=True)
    pdf = client.get(f"/postloan/migration?institution={p_id}&start={start}&end={end}&format=pdf")
    assert pdf.mimetype == "application/pdf" and "测试省农村信用社联合社" in pdf_text(pdf.data)
