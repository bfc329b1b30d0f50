"""``flask seed-demo``: three unions, every role, 300+ consistent loans with their credit files
and post-loan history, every login works, and running it again (or with ``--if-empty``) changes
nothing."""
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from portal.accounts.models import Institution, Role, User
from portal.accounts.services import create_institution
from portal.audit_trail import AuditEvent
from portal.demo.loans import DEMO_PASSWORD, id_check_digit, plan_province, uscc_check_char
from portal.demo.places import PROVINCES
from portal.extensions import db
from portal.loans.models import RISK_ORDER, Borrower, Loan
from portal.loans.services import loan_facts
from portal.rules.lookup import rules_for
from portal.timeutil import local_today


GUARANTEES = {
    "farm_credit": {"credit"}, "joint_guarantee": {"joint"}, "multi_guarantee": {"guarantee"},
    "guaranteed": {"guarantee"}, "mortgage": {"mortgage"}, "pledge": {"pledge"},
    "consumer": {"credit", "guarantee"}, "working_capital": {"mortgage", "guarantee"},
    "fixed_assets": {"mortgage"},
}


def _counts() -> dict[str, int]:
    return {model.__name__: db.session.execute(select(func.count()).select_from(model)).scalar_one()
            for model in (Institution, User, Borrower, Loan)}


def _history_counts() -> dict[str, int]:
    from portal.archive.models import Document, Lending
    from portal.auditing.models import CompletenessSnapshot
    from portal.postloan.models import BucketSnapshot, ClassificationReview, Inspection, RiskWarning
    return {model.__name__: db.session.execute(select(func.count()).select_from(model)).scalar_one()
            for model in (Document, Inspection, RiskWarning, ClassificationReview, BucketSnapshot,
                          CompletenessSnapshot, Lending)}


def _check_loans() -> None:
    today = local_today()
    loans = db.session.execute(select(Loan)).scalars().all()
    assert len(loans) >= 300
    statuses = Counter(loan.status for loan in loans)
    assert set(statuses) == {"active", "overdue", "settled", "written_off"}
    assert 0.08 <= statuses["overdue"] / len(loans) <= 0.16
    assert 0.08 <= statuses["settled"] / len(loans) <= 0.16
    assert sum(1 for loan in loans if loan.restructured_on) >= 3
    assert sum(1 for loan in loans if loan.amount_fen >= 50_000_000) >= 20
    assert sum(1 for loan in loans if loan.payment_method == "self") >= 20
    overdue_days = [loan.days_past_due for loan in loans if loan.status == "overdue"]
    assert min(overdue_days) <= 30 and max(overdue_days) > 360
    rules = {}
    for loan in loans:
        assert loan.guarantee_type in GUARANTEES[loan.product], loan.contract_no
        assert 0 < (today - loan.disbursed_on).days <= 3 * 366
        assert loan.maturity_on > loan.disbursed_on
        assert 4.35 <= float(loan.rate_percent) <= 8.5
        if loan.status == "settled":
            assert loan.balance_fen == 0 and loan.disbursed_on < loan.settled_on < today
        else:
            assert 0 < loan.balance_fen <= loan.amount_fen and loan.settled_on is None
        if loan.status == "active":
            assert loan.days_past_due == 0 and loan.maturity_on >= today
        if loan.status == "overdue":
            assert loan.days_past_due > 0 and loan.interest_arrears_fen > 0
        # Never better than the union's floor for its days past due or restructuring.
        province = loan.branch.province_code
        rules.setdefault(province, rules_for(loan.branch))
        floor = rules[province].classify_risk(loan_facts(loan), today).floor
        assert RISK_ORDER.index(loan.risk_class) >= RISK_ORDER.index(floor), loan.contract_no
        # The managing officer works at the loan's branch; large loans are approved by the county.
        assert loan.officer.institution_id == loan.branch_id
        assert loan.officer.has_role(Role.LOAN_OFFICER, Role.POST_LOAN_OFFICER)
        assert loan.investigator.institution_id == loan.branch_id
        assert loan.approver.has_role(Role.BRANCH_DIRECTOR)
        if loan.amount_fen >= 50_000_000:
            assert loan.approver.institution_id == loan.branch.parent_id
    for borrower in db.session.execute(select(Borrower)).scalars():
        assert len(borrower.id_number) == 18
        if borrower.kind == "individual":
            assert borrower.id_number[:2] in {"43", "37", "39"}
            assert borrower.id_number[17] == id_check_digit(borrower.id_number[:17])
        else:
            assert borrower.id_number[17] == uscc_check_char(borrower.id_number[:17])


def test_seed_demo_builds_a_portal_to_click_through(app, runner, login):
    result = runner.invoke(args=["seed-demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert DEMO_PASSWORD in result.output

    with app.app_context():
        provinces = db.session.execute(select(Institution).where(Institution.level == "province")).scalars().all()
        assert {p.code: p.rules_plugin for p in provinces} == {"HN": "hunan", "SD": "shandong", "TP": "template"}
        # The template province has its city tier between the union and the counties.
        county = db.session.execute(select(Institution).filter_by(code="TP01")).scalar_one()
        assert county.parent.level == "city" and county.path == "/TP/TPC1/TP01/"
        for province in provinces:
            branches = db.session.execute(select(Institution).where(
                Institution.level == "branch", Institution.path.startswith(province.path))).scalars().all()
            assert len(branches) >= 4
        users = db.session.execute(select(User)).scalars().all()
        for province in provinces:
            roles = set().union(*(u.roles for u in users if u.institution.path.startswith(province.path)))
            assert roles >= {r.value for r in Role} - {"admin"}, province.code
        assert "admin" in db.session.execute(select(User).filter_by(username="admin")).scalar_one().roles
        assert all(u.department and u.display_name != u.username for u in users)
        _check_loans()
        _check_documents()
        _check_postloan_history()
        usernames = [u.username for u in users]
        counts = _counts() | _history_counts()
        loan_events = db.session.execute(select(func.count()).select_from(AuditEvent)
                                         .where(AuditEvent.action == "demo.seed_loans")).scalar_one()
        n_branches = db.session.execute(select(func.count()).select_from(Institution)
                                        .where(Institution.level == "branch")).scalar_one()
        assert loan_events == n_branches
    for username in usernames:
        assert username in result.output

    for username in usernames:
        client = app.test_client()
        response = login(client, username, DEMO_PASSWORD)
        assert response.status_code == 302 and response.headers["Location"] == "/", username
        assert client.get("/").status_code == 200, username

    again = runner.invoke(args=["seed-demo"])
    assert again.exit_code == 0, again.output
    skipped = runner.invoke(args=["seed-demo", "--if-empty"])
    assert skipped.exit_code == 0, skipped.output
    assert DEMO_PASSWORD not in skipped.output
    with app.app_context():
        assert _counts() | _history_counts() == counts


def test_if_empty_leaves_a_database_with_data_alone(app, runner):
    with app.app_context():
        create_institution(None, "GD", "广东省农村信用社联合社", "province")
        db.session.commit()
    result = runner.invoke(args=["seed-demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert _counts() == {"Institution": 1, "User": 0, "Borrower": 0, "Loan": 0}


def test_the_plan_is_the_same_on_every_run():
    def snapshot():
        return [(code, p.order, p.borrower.id_number, p.borrower.name, p.product, p.amount_yuan, p.status,
                 p.disbursed_ago) for spec in PROVINCES for code, plans in plan_province(spec).items() for p in plans]

    first = snapshot()
    assert first == snapshot()
    assert len(first) >= 300
    assert len({(code, order) for code, order, *_rest in first}) == len(first)


def _check_documents() -> None:
    """Every branch's credit files are mostly complete, with gaps of the usual kinds at a rate of
    its own; documents in every state of the archive; nothing wrong but orphans of other tests."""
    from portal.archive.fixity import verify_archive
    from portal.archive.models import Document
    from portal.archive.storage import current_store
    from portal.auditing.completeness import audit_completeness
    docs = db.session.execute(select(Document)).scalars().all()
    loans = db.session.execute(select(func.count()).select_from(Loan)).scalar_one()
    assert len(docs) >= 6 * loans
    assert {d.state for d in docs} >= {"collected", "sorted", "filed", "archived"}
    assert all(d.archive_number for d in docs if d.state in ("filed", "archived"))
    assert all(d.shelf_location for d in docs if d.state == "archived" and d.paper_original)
    with_files = {d.loan_id for d in docs if d.loan_id}
    assert len(with_files) / loans >= 0.9
    today = local_today()
    rates, missing = [], Counter()
    for province in db.session.execute(select(Institution).where(Institution.level == "province")).scalars():
        audit = audit_completeness(province, as_of=today)
        for branch in audit.branches():
            assert branch.files == 22, branch.institution.code
            rates.append(branch.complete / branch.files)
        missing.update(audit.missing_by_type)
    assert all(0.6 <= rate <= 0.97 for rate in rates), rates
    assert max(rates) - min(rates) >= 0.08, rates          # branches differ
    assert 0.72 <= sum(rates) / len(rates) <= 0.9, rates
    # Gaps of several kinds, the registration office's 他项权证 among them.
    assert len(missing) >= 4 and missing["collateral_certificate"], missing
    assert [p for p in verify_archive(current_store()).problems if p.kind != "orphan"] == []


def _check_postloan_history() -> None:
    """Inspections recorded and signed off on the union's schedule, a minority behind; warnings,
    reviews, snapshots and lendings in every state."""
    from portal.archive.models import Lending
    from portal.auditing.models import CompletenessSnapshot
    from portal.postloan.models import (BucketSnapshot, ClassificationReview, Inspection, PostloanFile,
                                        RiskWarning)
    today = local_today()
    open_loans = db.session.execute(select(Loan).where(Loan.status.in_(("active", "overdue")))).scalars().all()
    inspections = db.session.execute(select(Inspection)).scalars().all()
    statuses = Counter(i.status for i in inspections)
    assert statuses["signed_off"] >= len(open_loans) and statuses["submitted"] and statuses["open"], statuses
    assert {i.kind for i in inspections if i.status == "signed_off"} == {"first", "routine", "special"}
    done = [i for i in inspections if i.status in ("submitted", "signed_off")]
    assert all(i.loan.disbursed_on <= i.inspected_on < today for i in done)
    # Each signed-off report is in the loan's credit file.
    filed = set(db.session.execute(select(PostloanFile.owner_id).where(
        PostloanFile.owner_kind == "inspection", PostloanFile.archive_document_id.is_not(None))).scalars())
    assert {i.id for i in inspections if i.status == "signed_off"} <= filed
    todo = [i for i in inspections if i.status in ("open", "draft")]
    behind = {i.loan_id for i in todo if i.due_on < today}
    assert 0 < len(behind) / len(open_loans) <= 0.3, (len(behind), len(open_loans))
    assert any(today <= i.due_on <= today + timedelta(days=7) for i in todo)
    # Every open loan past its first inspection's due date had it done, or it is one of the few behind.
    first_done = {i.loan_id for i in done if i.kind == "first"}
    assert len(first_done) >= 0.85 * len(open_loans)

    warnings = Counter(w.status for w in db.session.execute(select(RiskWarning)).scalars())
    assert warnings["open"] and warnings["handling"] and warnings["lifted"], warnings
    reviews = Counter(r.status for r in db.session.execute(select(ClassificationReview)).scalars())
    assert reviews["pending"] and reviews["confirmed"], reviews

    snapshot_days = set(db.session.execute(select(BucketSnapshot.as_of).distinct()).scalars())
    assert today in snapshot_days and len(snapshot_days) >= 12
    buckets = Counter(db.session.execute(select(BucketSnapshot.bucket).where(
        BucketSnapshot.as_of == min(snapshot_days))).scalars())
    assert len(buckets) >= 3, buckets
    trend_days = set(db.session.execute(select(CompletenessSnapshot.as_of).distinct()).scalars())
    assert today in trend_days and len(trend_days) >= 10

    lendings = db.session.execute(select(Lending)).scalars().all()
    states = Counter(lending.state for lending in lendings)
    assert states["issued"] >= 3 and states["returned"] and states["requested"], states
    overdue = [lending for lending in lendings if lending.state == "issued" and lending.due_on < today]
    assert 1 <= len(overdue) <= 3
