"""``flask postloan run-daily`` (idempotent for a date) and ``flask postloan due``."""
from __future__ import annotations

import json
from datetime import date, timedelta

from sqlalchemy import func, select

from portal.audit_trail import AuditEvent
from portal.extensions import db


def _table_counts() -> dict[str, int]:
    counts = {}
    for table in db.metadata.sorted_tables:
        counts[table.name] = db.session.execute(select(func.count()).select_from(table)).scalar_one()
    return counts


def _snapshot_of_rows():
    """Every post-loan row's content, to compare two runs."""
    from portal.postloan import models
    content = {}
    for model in (models.Inspection, models.RiskWarning, models.ClassificationReview, models.CollectionTask,
                  models.LoanNotice, models.BucketSnapshot, models.LoanCondition, models.LoanOfficerPeriod):
        content[model.__tablename__] = sorted(
            repr({c.name: getattr(row, c.key) for c in model.__table__.columns if c.key in model.__mapper__.attrs})
            for row in db.session.execute(select(model)).scalars())
    return content


def test_run_daily_twice_changes_nothing(app, runner, org, make_loan):
    with app.app_context():
        branch, officer = org.inst("B1"), org.user("officer")
        make_loan(branch, officer, disbursed_on=date(2024, 5, 30), payment_method="self")
        make_loan(branch, officer, days_past_due=95, interest_arrears_fen=5_000, status="overdue", credit_rating="BB")
        make_loan(branch, officer, maturity_on=date(2024, 6, 20))
        make_loan(branch, officer, restructured_on=date(2024, 4, 1), risk_class="substandard")
        make_loan(org.inst("B2"), org.user("officer2"), days_past_due=400, status="overdue")
        make_loan(branch, officer, status="settled", balance_fen=0, settled_on=date(2024, 5, 1))
        db.session.commit()
    first = runner.invoke(args=["postloan", "run-daily", "--as-of", "2024-06-03", "--json"])
    assert first.exit_code == 0, first.output
    changes = json.loads(first.output)["changes"]
    assert changes["snapshots"] == 5 and changes["reviews_opened"] >= 2 and changes["notices_due"] >= 2
    with app.app_context():
        counts, content = _table_counts(), _snapshot_of_rows()
        events = db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    second = runner.invoke(args=["postloan", "run-daily", "--as-of", "2024-06-03"])
    assert second.exit_code == 0 and "nothing to change" in second.output
    with app.app_context():
        assert _table_counts() == counts and _snapshot_of_rows() == content
        assert db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == events
        assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "postloan.run_daily")).scalars().one()
    # The next day is a new snapshot, and nothing else changed.
    third = runner.invoke(args=["postloan", "run-daily", "--as-of", "2024-06-04", "--json"])
    assert json.loads(third.output)["changes"] == {"snapshots": 5}


def test_due_command_lists_what_the_user_has_due(app, runner, org, make_loan):
    from portal.postloan.common import week_end
    from portal.timeutil import local_today
    today = local_today()  # loan updates raise special inspections and collection on the real day
    end = week_end(today)
    with app.app_context():
        branch, officer = org.inst("B1"), org.user("officer")
        make_loan(branch, officer, borrower_name="过期户", disbursed_on=today - timedelta(days=30))
        make_loan(branch, officer, borrower_name="本周户", disbursed_on=today - timedelta(days=7))
        make_loan(branch, officer, borrower_name="下周户", disbursed_on=end - timedelta(days=6))
        make_loan(branch, officer, borrower_name="催收户", days_past_due=10, status="overdue",
                  disbursed_on=today - timedelta(days=200))
        make_loan(org.inst("B2"), org.user("officer2"), borrower_name="别人户", disbursed_on=today - timedelta(days=30))
        db.session.commit()
    assert runner.invoke(args=["postloan", "run-daily"]).exit_code == 0
    result = runner.invoke(args=["postloan", "due", "--user", "officer", "--as-of", today.isoformat(), "--json"])
    assert result.exit_code == 0, result.output
    due = json.loads(result.output)
    assert due["week_ends"] == end.isoformat()
    overdue = {(i["borrower"], i["kind"]) for i in due["inspections"]["overdue"]}
    assert overdue == {("过期户", "first"), ("催收户", "first")}
    this_week = {(i["borrower"], i["kind"], i["due_on"]) for i in due["inspections"]["due_this_week"]}
    assert this_week == {("本周户", "first", today.isoformat()), ("催收户", "special", today.isoformat())}
    assert [c["borrower"] for c in due["collection"]] == ["催收户"]
    assert [n["kind"] for n in due["notices"]] == ["overdue"]
    everyone = json.dumps(due, ensure_ascii=False)
    assert "下周户" not in everyone and "别人户" not in everyone
    text = runner.invoke(args=["postloan", "due", "--user", "officer"])
    assert "Inspections overdue: 2" in text.output and "本周户" in text.output
    director = json.loads(runner.invoke(args=["postloan", "due", "--user", "director", "--json"]).output)
    assert [r["current"] for r in director["classification"]] == ["normal"]
    assert runner.invoke(args=["postloan", "due", "--user", "nobody"]).exit_code == 1
    assert runner.invoke(args=["postloan", "run-daily", "--as-of", "june"]).exit_code == 2


def test_home_page_card_shows_inspections_due(app, client, org, login, make_loan):
    with app.app_context():
        make_loan(org.inst("B1"), org.user("officer"), disbursed_on=date(2024, 1, 1))
        db.session.commit()
    login(client, "officer")
    card = client.get("/").get_data(as_text=True).split('id="postloan-due"', 1)[1].split("</div></div>", 1)[0]
    assert 'id="postloan-overdue">1<' in card and "/postloan/inspections" in card
