"""An auditor reads everything in their subtree and changes nothing but their own audit records:
every POST route of the portal, outside the auditor's own archive inspections and the fixity
check they may ask for, is refused for an auditor and leaves every table as it was.

A new POST route with a path parameter this test does not know fails the test on purpose: say
here which object it needs, so that auditors are checked against it too."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from portal.extensions import db
from portal.timeutil import local_today

from .auditing_helpers import add_doc

# Not records at all (signing in and out, the interface language), or the auditor's own:
# starting an archive inspection, and asking for a fixity check (which records a run).
ALLOWED = {"auth.login", "auth.logout", "auth.set_language", "auditing.start_inspection", "auditing.fixity_verify"}
ACTIONS = {
    "archive.lending_action": ["approve", "refuse", "withdraw", "issue", "renew", "return", "remind"],
    "archive.transfer_action": ["send", "receive", "cancel"],
    "archive.destruction_action": ["add", "remove", "propose", "approve", "reject", "confirm", "execute", "cancel"],
}


@pytest.fixture()
def world(app, make_org, make_loan) -> dict:
    """One of every object a POST route acts on, all in branch B1 (inside the county auditor's
    subtree), none of them the auditor's."""
    from portal.archive.models import DestructionList, Hold, Lending, Transfer, TransferItem
    from portal.auditing.inspections import start_archive_inspection
    from portal.postloan.models import (ClassificationReview, Handover, HandoverItem, Inspection, LoanNotice,
                                        RiskWarning, WriteOff)
    today = local_today()
    with app.app_context():
        org = make_org()
        b1 = org.inst("B1")
        officer, archivist, director = org.user("officer"), org.user("archivist"), org.user("director")
        loan = make_loan(b1, officer, disbursed_on=today - timedelta(days=30))
        collected = add_doc(loan, "loan_contract", "collected")
        archived = add_doc(loan, "loan_receipt", "archived")
        db.session.flush()
        lending = Lending(institution_id=b1.id, volume_id=archived.volume_id, requester_id=officer.id, medium="digital",
                          reason="查阅", days=5, state="requested")
        lending.documents = [archived]
        transfer = Transfer(institution_id=b1.id, to_institution_id=org.inst("C1").id, state="draft",
                            created_by_id=archivist.id)
        hold = Hold(institution_id=b1.id, kind="legal", loan_id=loan.id, reason="诉讼", placed_by_id=director.id)
        destruction = DestructionList(institution_id=b1.id, state="draft", appraisal="到期", proposer_id=archivist.id)
        warning = RiskWarning(loan_id=loan.id, branch_id=b1.id, officer_id=officer.id, signal="lost_contact",
                              source="manual", status="open", raised_on=today)
        review = ClassificationReview(loan_id=loan.id, branch_id=b1.id, as_of=today, status="pending", floor="normal",
                                      suggested="normal", previous_class="normal")
        notice = LoanNotice(loan_id=loan.id, branch_id=b1.id, officer_id=officer.id, kind="repayment",
                            reference_on=today + timedelta(days=20), due_on=today)
        handover = Handover(institution_id=b1.id, from_officer_id=officer.id, to_officer_id=org.user("post_loan").id,
                            status="proposed", reason="调岗", proposed_by_id=director.id)
        write_off = WriteOff(loan_id=loan.id, branch_id=b1.id, status="requested", principal_fen=100, reason="无法收回",
                             requested_by_id=officer.id)
        db.session.add_all([lending, transfer, hold, destruction, warning, review, notice, handover, write_off])
        db.session.flush()
        db.session.add(TransferItem(transfer_id=transfer.id, document_id=archived.id))
        db.session.add(HandoverItem(handover_id=handover.id, loan_id=loan.id, balance_fen=loan.balance_fen))
        archive_inspection = start_archive_inspection(director, b1, 1)   # the branch director's own record
        db.session.commit()
        # A submitted inspection escalated to the county: sign-off, return and review are all open
        # to someone, so refusing them is about the auditor.
        inspection = db.session.execute(select(Inspection).where(Inspection.loan_id == loan.id)).scalars().first()
        inspection.status, inspection.inspected_on, inspection.recorded_by_id = "submitted", today, officer.id
        inspection.escalation_status, inspection.escalation_institution_id = "pending", org.inst("C1").id
        db.session.commit()
        return {
            "borrower_id": loan.borrower_id, "document_id": collected.id, "lending_id": lending.id,
            "transfer_id": transfer.id, "hold_id": hold.id, "list_id": destruction.id, "loan_id": loan.id,
            "warning_id": warning.id, "review_id": review.id, "notice_id": notice.id, "handover_id": handover.id,
            "write_off_id": write_off.id, "code": "P", "postloan_inspection_id": inspection.id,
            "archive_inspection_id": archive_inspection.id, "archived_id": archived.id, "B1": b1.id,
            "C1": org.inst("C1").id,
        }


def form_data(world: dict) -> dict:
    """Plausible values for every field any POST form has, so that a refusal is about who asks."""
    today = local_today().isoformat()
    return {
        "note": "稽核", "reason": "稽核", "days": "5", "opinion": "同意", "decided": "special_mention",
        "settled_on": today, "signal": "lost_contact", "details": "失联", "channel": "call", "result": "reached",
        "contacted_on": today, "kind": "routine", "action": "handle", "decision": "approve", "outcome": "repaid_on_time",
        "management": "good", "summary": "总结", "lessons": "", "appraisal": "到期", "institution": str(world["B1"]),
        "receiver": str(world["C1"]), "volume_ids": "1", "document_ids": str(world["archived_id"]),
        "contract_no": "X", "doc_type": "loan_contract", "loan": str(world["loan_id"]), "shelf_location": "A-1",
        "medium": "digital", "findings": "改", "conclusion": "satisfactory", "inspected_on": today, "to": "1",
        "from": "1", "all": "y", "plugin": "hunan", "method": "on_site", "conclusion_text": "", "item_id": "1",
        "numbers": "", "sample_size": "1", "target": str(world["B1"]),
    }


def fingerprint() -> str:
    """A digest of every row of every table."""
    digest = hashlib.sha256()
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            rows = conn.execute(text(f'SELECT * FROM "{table.name}" ORDER BY 1')).all()
            digest.update(f"{table.name}:{rows!r}".encode())
    return digest.hexdigest()


def urls_for(rule, world: dict) -> list[str]:
    values: dict = {}
    for name in rule.arguments:
        if name == "action":
            continue
        if name == "inspection_id":
            key = "archive_inspection_id" if rule.endpoint.startswith("auditing.") else "postloan_inspection_id"
        else:
            key = name
        assert key in world, f"POST {rule.rule} ({rule.endpoint}): say which object its <{name}> is"
        values[name] = world[key]
    if "action" in rule.arguments:
        assert rule.endpoint in ACTIONS, f"POST {rule.rule} ({rule.endpoint}): list its actions in ACTIONS"
        return [rule.build({**values, "action": a})[1] for a in ACTIONS[rule.endpoint]]
    if "fmt" in rule.arguments:
        return []
    return [rule.build(values)[1]]


def test_every_post_route_outside_their_own_records_is_refused_for_auditors(app, client, csrf_token, login, world):
    data = form_data(world)
    login(client, "county_auditor")
    token = csrf_token(client, "/audit/inspections")
    rules = [r for r in app.url_map.iter_rules() if "POST" in r.methods and r.endpoint not in ALLOWED]
    assert len(rules) >= 30
    with app.app_context():
        before = fingerprint()
    checked, statuses = 0, {}
    for rule in rules:
        for url in urls_for(rule, world):
            response = client.post(url, data={**data, "csrf_token": token})
            statuses[url] = response.status_code
            assert response.status_code >= 400, f"{url} ({rule.endpoint}) answered {response.status_code}"
            with app.app_context():
                assert fingerprint() == before, f"{url} ({rule.endpoint}) changed something"
            checked += 1
    assert checked >= 45
    # Refused for who asks (403), or not found for them (404), never for what was sent.
    assert set(statuses.values()) <= {403, 404, 405}, {u: s for u, s in statuses.items() if s not in (403, 404, 405)}
    # Reading is allowed: the objects the routes act on are visible to the auditor.
    for path in (f"/archive/lending/{world['lending_id']}", f"/archive/documents/{world['document_id']}",
                 f"/postloan/loans/{world['loan_id']}", f"/audit/inspections/{world['archive_inspection_id']}"):
        assert client.get(path).status_code == 200, path
