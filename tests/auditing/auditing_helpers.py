"""What the audit tests share: document rows without stored objects (completeness only looks at
rows), write-offs, and a small union with hand-made credit files whose gaps are known
(``build_known_gaps``; the ``known_gaps`` fixture)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from portal.extensions import db
from portal.timeutil import CST, local_today

from tests.helpers.factories import make_loan, make_org


# --- documents without objects (completeness only looks at rows) ------------------------------

def _stages() -> dict[str, str]:
    """Stage of every document type any shipped plugin defines."""
    from plugins.hunan.rules import DOCUMENT_TYPES as HUNAN
    from plugins.shandong.rules import DOCUMENT_TYPES as SHANDONG
    from portal.rules.defaults import DOCUMENT_TYPES
    return {d.code: d.stage for d in [*DOCUMENT_TYPES, *HUNAN, *SHANDONG]}


STAGE_OF = _stages()


def volume_of(borrower_id: int, institution_id: int):
    """The borrower's credit file, opened if needed (kept in the session for the next document)."""
    from portal.archive.models import Volume
    cache = db.session.info.setdefault("test_volumes", {})
    volume = cache.get(borrower_id)
    if volume is None:
        volume = db.session.execute(db.select(Volume).filter_by(borrower_id=borrower_id)).scalar_one_or_none()
        if volume is None:
            volume = Volume(borrower_id=borrower_id, institution_id=institution_id, title="信贷档案")
            db.session.add(volume)
        cache[borrower_id] = volume
    return volume


def add_doc(loan, doc_type: str, state: str = "archived", *, whole_file: bool = False):
    """A document row of the loan's credit file (no stored object); flushed with the next flush."""
    from portal.archive.models import Document
    key = uuid.uuid4().hex
    doc = Document(volume=volume_of(loan.borrower_id, loan.branch_id), loan_id=None if whole_file else loan.id,
                   borrower_id=loan.borrower_id, institution_id=loan.branch_id, doc_type=doc_type,
                   stage=STAGE_OF.get(doc_type, "post_loan"), state=state, retention_code="D30", retention_years=30,
                   sha256=key * 2, size_bytes=100, media_type="application/pdf", original_name=f"{doc_type}.pdf",
                   object_key=f"test/{key}", archive_number=f"T-{key[:12]}" if state in ("filed", "archived") else None)
    db.session.add(doc)
    return doc


def add_docs(loan, doc_types, state: str = "archived"):
    return [add_doc(loan, code, state) for code in doc_types]


def write_off(loan, decided_on: date, status: str = "approved"):
    """An approved write-off decided on a China date (stored as naive UTC like the service does)."""
    from portal.postloan.models import WriteOff
    decided = datetime.combine(decided_on, time(10, 0), tzinfo=CST).astimezone(timezone.utc).replace(tzinfo=None)
    row = WriteOff(loan_id=loan.id, branch_id=loan.branch_id, status=status, principal_fen=loan.balance_fen or 1,
                   reason="无法收回", decided_at=decided)
    db.session.add(row)
    db.session.flush()
    return row


APPLICATION_INDIVIDUAL = ["loan_application", "id_documents", "credit_rating", "investigation_report", "approval"]
APPLICATION_ENTERPRISE = ["loan_application", "id_documents", "investigation_report", "approval"]


@dataclass
class KnownGaps:
    """Seven loans in P (B1: L1–L3, B2: L4–L7) under the baseline rules; ``gaps`` is every
    document missing today, as (contract, type, stage, due since)."""

    org: object
    today: date
    loans: dict[str, int] = field(default_factory=dict)
    contracts: dict[str, str] = field(default_factory=dict)
    gaps: set[tuple[str, str, str, date]] = field(default_factory=set)
    complete: set[str] = field(default_factory=set)


def build_known_gaps(app) -> KnownGaps:
    today = local_today()
    with app.app_context():
        org = make_org()
        b1, b2 = org.inst("B1"), org.inst("B2")
        officer, officer2 = org.user("officer"), org.user("officer2")
        world = KnownGaps(org, today)

        def loan(name, branch, who, **fields):
            row = make_loan(branch, who, borrower_name=f"借款人{name}", **fields)
            world.loans[name] = row.id
            world.contracts[name] = row.contract_no
            return row

        # L1: complete; past its first inspection (entrusted payment: 7 days).
        l1 = loan("L1", b1, officer, disbursed_on=today - timedelta(days=90))
        add_docs(l1, APPLICATION_INDIVIDUAL + ["loan_contract", "loan_receipt", "first_visit", "inspection_report"])
        # L2: enterprise mortgage disbursed 4 days ago: first inspection not yet due. The mortgage
        # contract exists only as a discarded row, the collateral certificate not at all.
        l2 = loan("L2", b1, officer, borrower_kind="enterprise", product="mortgage", guarantee_type="mortgage",
                  disbursed_on=today - timedelta(days=4))
        add_docs(l2, APPLICATION_ENTERPRISE + ["loan_contract", "loan_receipt"])
        add_doc(l2, "mortgage_contract", "discarded")
        # L3: joint guarantee, settled; identity papers filed for the whole credit file; the
        # first inspection record was destroyed; no settlement certificate.
        settled = today - timedelta(days=60)
        l3 = loan("L3", b1, officer, product="joint_guarantee", guarantee_type="joint",
                  disbursed_on=today - timedelta(days=400), status="settled", balance_fen=0, settled_on=settled)
        add_docs(l3, ["loan_application", "credit_rating", "investigation_report", "approval", "loan_contract",
                      "loan_receipt", "guarantee_contract"])
        add_doc(l3, "id_documents", whole_file=True)
        add_doc(l3, "first_visit", "destroyed")
        # L4: pledge, written off 20 days ago; the evidence is missing.
        l4 = loan("L4", b2, officer2, product="pledge", guarantee_type="pledge", status="written_off",
                  disbursed_on=today - timedelta(days=500), days_past_due=400, risk_class="loss")
        add_docs(l4, APPLICATION_INDIVIDUAL + ["loan_contract", "loan_receipt", "pledge_contract", "first_visit",
                                               "write_off_application", "write_off_approval"])
        write_off(l4, today - timedelta(days=20))
        # L5: self-paid, disbursed 3 days ago: its first inspection is due today, and missing.
        l5 = loan("L5", b2, officer2, payment_method="self", disbursed_on=today - timedelta(days=3))
        add_docs(l5, APPLICATION_INDIVIDUAL + ["loan_contract", "loan_receipt"])
        # L6: complete, every document only collected (still counts).
        l6 = loan("L6", b2, officer2, disbursed_on=today - timedelta(days=30))
        add_docs(l6, APPLICATION_INDIVIDUAL + ["loan_contract", "loan_receipt", "first_visit"], "collected")
        # L7: complete guaranteed loan, a mix of states.
        l7 = loan("L7", b2, officer2, product="guaranteed", guarantee_type="guarantee",
                  disbursed_on=today - timedelta(days=200))
        for i, code in enumerate(APPLICATION_INDIVIDUAL + ["loan_contract", "loan_receipt", "guarantee_contract",
                                                          "first_visit"]):
            add_doc(l7, code, ("sorted", "filed", "archived")[i % 3])
        # A loan of the other union, with nothing: never part of P's audit.
        loan("Q1", org.inst("E1"), org.user("officer_q"))
        db.session.commit()

    c = world.contracts
    world.gaps = {
        (c["L2"], "mortgage_contract", "disbursement", today - timedelta(days=4)),
        (c["L2"], "collateral_certificate", "disbursement", today - timedelta(days=4)),
        (c["L3"], "first_visit", "post_loan", today - timedelta(days=393)),
        (c["L3"], "settlement_certificate", "settlement", settled),
        (c["L4"], "write_off_evidence", "write_off", today - timedelta(days=20)),
        (c["L5"], "first_visit", "post_loan", today),
    }
    world.complete = {c["L1"], c["L6"], c["L7"]}
    return world
