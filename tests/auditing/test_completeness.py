"""The completeness audit: every missing document and nothing else, the dates they were due,
the rates per branch and county, the daily snapshots, and the set-based computation equal to
asking the plugin loan by loan on varied data, for every shipped plugin."""
from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.archive.models import LIVE_STATES, Document
from portal.auditing.completeness import (audit_completeness, completeness_trend, stages_due, write_snapshots)
from portal.auditing.models import CompletenessSnapshot
from portal.extensions import db
from portal.loans.models import Loan
from portal.loans.services import loan_facts
from portal.postloan.models import WriteOff
from portal.rules.lookup import rules_for
from portal.rules.types import STAGES
from portal.timeutil import local_today, to_local

from .auditing_helpers import add_doc, write_off


def gap_set(audit):
    return {(r.contract_no, g.doc_type, g.stage, g.due_since) for r in audit.loans for g in r.missing}


def test_every_missing_document_is_reported_and_nothing_else(app, known_gaps):
    with app.app_context():
        audit = audit_completeness(known_gaps.org.inst("P"))
        assert gap_set(audit) == known_gaps.gaps
        complete = {r.contract_no for r in audit.loans if r.complete}
        assert complete == known_gaps.complete
        assert all(not r.missing for r in audit.loans if r.contract_no in known_gaps.complete)
        # The other union's loan is not part of this union's audit.
        assert known_gaps.contracts["Q1"] not in {r.contract_no for r in audit.loans}


def test_rates_per_branch_county_and_union(app, known_gaps):
    with app.app_context():
        org = known_gaps.org
        audit = audit_completeness(org.inst("P"))
        by_code = {t.institution.code: t for t in audit.totals.values()}
        assert (by_code["B1"].files, by_code["B1"].complete, by_code["B1"].missing_documents) == (3, 1, 4)
        assert (by_code["B2"].files, by_code["B2"].complete, by_code["B2"].missing_documents) == (4, 2, 2)
        assert by_code["B1"].rate == Decimal("33.3") and by_code["B2"].rate == Decimal("50.0")
        assert (by_code["C1"].files, by_code["C1"].complete, by_code["C1"].rate) == (7, 3, Decimal("42.9"))
        assert audit.total.files == 7 and audit.total.missing_documents == 6
        assert [t.institution.code for t in audit.children(org.inst("C1").id)] == ["B1", "B2"]
        # Drilling down: a branch's own audit gives the same numbers as the union's.
        branch = audit_completeness(org.inst("B2"))
        assert (branch.total.files, branch.total.complete) == (4, 2)
        assert gap_set(branch) == {g for g in known_gaps.gaps if g[0] in {known_gaps.contracts[n] for n in ("L4", "L5")}}
        assert audit.missing_by_type["first_visit"] == 2


def test_a_loan_of_the_other_union_or_nothing_yields_an_empty_audit(app, known_gaps):
    with app.app_context():
        audit = audit_completeness(known_gaps.org.inst("D1"))
        assert audit.total.files == 1 and audit.total.complete == 0
        assert audit.total.rate == Decimal("0.0")
        empty = audit_completeness(known_gaps.org.inst("P"), loan_ids=[])
        assert empty.total.files == 0 and empty.total.rate is None


def test_documents_that_do_not_count(app, known_gaps):
    """Destroyed and discarded documents are missing; collected ones count; a document linked to
    no loan counts for every loan of the borrower."""
    with app.app_context():
        audit = audit_completeness(known_gaps.org.inst("P"))
        l3 = audit.loan(known_gaps.loans["L3"])
        assert "id_documents" not in {g.doc_type for g in l3.missing}       # filed for the whole file
        assert "first_visit" in {g.doc_type for g in l3.missing}            # only destroyed
        assert audit.loan(known_gaps.loans["L6"]).complete                  # all merely collected
        # Archiving the missing certificate (any live state) completes the mortgage loan's part.
        l2 = db.session.get(Loan, known_gaps.loans["L2"])
        add_doc(l2, "collateral_certificate", "sorted")
        add_doc(l2, "mortgage_contract", "filed")
        db.session.commit()
        again = audit_completeness(known_gaps.org.inst("B1"))
        assert again.loan(l2.id).complete and again.loan(l2.id).required == 8


def test_stages_apply_when_due():
    today = date(2024, 6, 3)
    base = dict(disbursed_on=date(2024, 5, 1), settled_on=None, written_off_on=None, as_of=today)
    assert set(stages_due(status="active", first_inspection_due=date(2024, 6, 4), **base)) == {
        "application", "disbursement"}
    assert stages_due(status="active", first_inspection_due=today, **base)["post_loan"] == today
    settled = stages_due(status="settled", first_inspection_due=date(2024, 5, 8),
                         **{**base, "settled_on": date(2024, 6, 1)})
    assert settled["settlement"] == date(2024, 6, 1) and "write_off" not in settled
    written = stages_due(status="written_off", first_inspection_due=date(2024, 5, 8),
                         **{**base, "written_off_on": date(2024, 6, 2)})
    assert written["write_off"] == date(2024, 6, 2) and "settlement" not in written


def test_daily_snapshot_and_trend(app, known_gaps):
    with app.app_context():
        union = known_gaps.org.inst("P")
        audit = audit_completeness(union)
        assert write_snapshots(audit) == 2
        yesterday = CompletenessSnapshot(institution_id=known_gaps.org.inst("B1").id,
                                         as_of=audit.as_of - timedelta(days=1), files=3, complete=0)
        db.session.add(yesterday)
        db.session.commit()
        assert write_snapshots(audit_completeness(union)) == 2            # same day: overwritten
        db.session.commit()
        rows = db.session.execute(select(CompletenessSnapshot).where(
            CompletenessSnapshot.as_of == audit.as_of)).scalars().all()
        assert len(rows) == 2
        trend = completeness_trend(union, as_of=audit.as_of)
        assert [(p.files, p.complete) for p in trend] == [(3, 0), (7, 3)]
        assert trend[-1].rate == Decimal("42.9")
        assert [p.files for p in completeness_trend(known_gaps.org.inst("B2"), as_of=audit.as_of)] == [4]


# --- set-based == loan by loan -----------------------------------------------------------------

PRODUCTS = [("farm_credit", "credit"), ("joint_guarantee", "joint"), ("multi_guarantee", "guarantee"),
            ("mortgage", "mortgage"), ("pledge", "pledge"), ("guaranteed", "guarantee"),
            ("working_capital", "mortgage"), ("fixed_assets", "mortgage"), ("consumer", "credit"),
            ("consumer", "guarantee")]
STATES = ["collected", "sorted", "filed", "archived", "discarded", "destroyed"]


@pytest.fixture()
def varied_loans(make_loan):
    """``varied_loans(rng, org, today, n=60)``: loans of every product, guarantee, borrower kind,
    payment, status and class, with random documents of every type in every state (some filed
    for the whole credit file)."""
    def make(rng: random.Random, org, today: date, n: int = 60) -> None:
        rules = rules_for(org.inst("P"))
        codes = [d.code for d in rules.document_types()]
        branches = [org.inst("B1"), org.inst("B2")]
        for i in range(n):
            product, guarantee = rng.choice(PRODUCTS)
            status = rng.choice(["active", "active", "overdue", "settled", "written_off"])
            disbursed = today - timedelta(days=rng.choice([0, 1, 2, 3, 4, 6, 7, 8, 30, 200, 800]))
            dpd = rng.randint(1, 500) if status in ("overdue", "written_off") else 0
            loan = make_loan(rng.choice(branches), None, product=product, guarantee_type=guarantee,
                             borrower_kind=rng.choice(["individual", "individual", "enterprise"]),
                             payment_method=rng.choice(["self", "entrusted"]), status=status,
                             risk_class=rng.choice(["normal", "special_mention", "substandard", "doubtful", "loss"]),
                             credit_rating=rng.choice(["AAA", "A", "BB", "unrated"]), days_past_due=dpd,
                             amount_fen=rng.choice([5_000_000, 60_000_000, 900_000_000]),
                             disbursed_on=disbursed, maturity_on=disbursed + timedelta(days=365),
                             settled_on=disbursed + timedelta(days=rng.randint(0, 30)) if status == "settled" else None,
                             balance_fen=0 if status == "settled" else 5_000_000)
            if rng.random() < 0.3:       # a full file, in live states
                for code in codes:
                    add_doc(loan, code, rng.choice(STATES[:4]), whole_file=rng.random() < 0.1)
            else:
                for code in rng.sample(codes, rng.randint(0, len(codes))):
                    add_doc(loan, code, rng.choice(STATES), whole_file=rng.random() < 0.1)
            if status == "written_off" and rng.random() < 0.7:
                write_off(loan, today - timedelta(days=rng.randint(0, 90)))
    return make


def loan_by_loan(loan: Loan, as_of: date) -> tuple[int, set[tuple[str, str, date | None]]]:
    """What asking the plugin about this one loan gives: (documents required, missing)."""
    rules = rules_for(loan.branch)
    facts = loan_facts(loan)
    held = set(db.session.execute(select(Document.doc_type).where(
        Document.borrower_id == loan.borrower_id, Document.state.in_(LIVE_STATES),
        (Document.loan_id == loan.id) | Document.loan_id.is_(None))).scalars())
    decided = db.session.execute(select(WriteOff.decided_at).where(
        WriteOff.loan_id == loan.id, WriteOff.status == "approved").order_by(WriteOff.decided_at.desc())).scalars().first()
    first_due = rules.first_inspection_due(facts)
    due: dict[str, date | None] = {"application": loan.disbursed_on, "disbursement": loan.disbursed_on}
    if first_due <= as_of:
        due["post_loan"] = first_due
    if loan.status == "settled":
        due["settlement"] = loan.settled_on
    if loan.status == "written_off":
        due["write_off"] = to_local(decided).date() if decided else loan.settled_on
    required: dict[str, str] = {}
    for stage in STAGES:
        if stage in due:
            for code in rules.required_documents(facts, stage):
                required.setdefault(code, stage)
    return len(required), {(code, stage, due[stage]) for code, stage in required.items() if code not in held}


@pytest.mark.parametrize("plugin", [None, "hunan", "shandong", "template"])
def test_set_based_audit_equals_asking_loan_by_loan(app, plugin, make_org, varied_loans):
    today = local_today()
    with app.app_context():
        org = make_org(plugin=plugin)
        varied_loans(random.Random(f"audit-{plugin}"), org, today)
        db.session.commit()
        audit = audit_completeness(org.inst("P"), as_of=today)
        loans = db.session.execute(select(Loan).where(Loan.branch_id.in_([org.inst("B1").id, org.inst("B2").id])))\
            .scalars().all()
        assert len(audit.loans) == len(loans) == 60
        missing_seen = 0
        for loan in loans:
            result = audit.loan(loan.id)
            required, missing = loan_by_loan(loan, today)
            assert result.required == required, loan.contract_no
            assert {(g.doc_type, g.stage, g.due_since) for g in result.missing} == missing, loan.contract_no
            missing_seen += len(missing)
        assert missing_seen > 40 and sum(r.complete for r in audit.loans) >= 8
        assert audit.total.missing_documents == missing_seen
