"""A small world for the security tests: the same objects in three places, built through the
portal's own services, so each route can be asked for an object inside and outside the user's
subtree.

Places: ``B1`` (the branch of the users the matrix signs in as), ``B2`` (a sibling branch of
the same county: outside a branch user's subtree, inside a union admin's) and ``E1`` (a branch
of another province: outside everyone's subtree but the operator's). Every borrower's name and
every contract number carries its place's marker, so a page that leaks another place's content
is caught by looking for the marker in its HTML.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, timedelta

from werkzeug.datastructures import FileStorage

from portal.extensions import db

from tests.helpers.factories import PASSWORD, make_loan, make_org
from tests.helpers.files import pdf_bytes

AS_OF = date(2024, 6, 3)
PLACES = ("B1", "B2", "E1")

# The marker of each place: in borrower names and contract numbers.
MARKERS = {"B1": "本社户", "B2": "邻社户", "E1": "外省户"}
CONTRACT_PREFIX = {place: f"SEC-{place}-" for place in PLACES}

# The matrix signs in as one user per role, all of branch B1 or its province P.
ROLE_USERS = {
    "admin": "admin",                      # P, the deployment's operator (global)
    "union_admin": "union_admin",          # P
    "loan_officer": "officer",             # B1
    "post_loan_officer": "post_loan",      # B1
    "branch_director": "director",         # B1
    "archivist": "archivist",              # B1
    "auditor": "auditor",                  # B1
}
ROLES = tuple(ROLE_USERS)

# Who works in each place (the B1 ones come from make_org; the others are added here).
PLACE_USERS = {
    "B1": {"officer": "officer", "post_loan": "post_loan", "director": "director", "archivist": "archivist"},
    "B2": {"officer": "officer2", "post_loan": "post_loan2", "director": "director2", "archivist": "archivist2"},
    "E1": {"officer": "officer_q", "post_loan": "post_loan_q", "director": "director_q", "archivist": "archivist_q"},
}
EXTRA_USERS = {
    "post_loan2": ("B2", ["post_loan_officer"]), "archivist2": ("B2", ["archivist"]),
    "post_loan_q": ("E1", ["post_loan_officer"]), "director_q": ("E1", ["branch_director"]),
    "archivist_q": ("E1", ["archivist"]),
}
PROVINCE = {"B1": "P", "B2": "P", "E1": "Q"}
COUNTY = {"B1": "C1", "B2": "C1", "E1": "D1"}


def visible(role: str, place: str) -> bool:
    """Whether the user signed in for ``role`` sees objects of ``place`` (their subtree)."""
    if role == "admin":
        return True
    if role == "union_admin":
        return PROVINCE[place] == "P"
    return place == "B1"


@dataclass
class Place:
    code: str
    institution: int
    province: str
    province_id: int
    county: int
    loan: int                  # loan A: active, credit file with an archived document
    borrower: int
    contract: str
    loan_b: int                # loan B: overdue, 60万, the post-loan work
    borrower_b: int
    contract_b: str
    volume: int
    doc_archived: int
    archive_number: str
    doc_collected: int
    lending: int               # requested by the place's officer
    transfer: int              # a draft handover list to the county
    hold: int
    destruction_list: int      # a draft
    users: dict[str, int]      # the place's officer, post_loan, director, archivist
    # Filled in after the daily run (_postloan_work):
    inspection_open: int = 0       # a special inspection still to do
    inspection_submitted: int = 0  # waiting for sign-off
    inspection_signed: int = 0     # signed off, report kept, escalated to the county
    report_file: int = 0           # the signed-off report (postloan_file)
    warning: int = 0
    review: int = 0
    notice: int = 0
    handover: int = 0              # proposed
    write_off: int = 0             # requested
    archive_inspection: int = 0    # the audit workspace's record, kept by the place's director


@dataclass
class World:
    app: object
    org: object
    places: dict[str, Place]
    user_ids: dict[str, int]

    def __getitem__(self, place: str) -> Place:
        return self.places[place]

    def user_id(self, username: str) -> int:
        return self.user_ids[username]


def _build_place(org, code: str) -> Place:
    from portal.accounts.models import User
    from portal.archive import destruction, holds, lending, services, transfer

    users = {role: db.session.execute(db.select(User).filter_by(username=name)).scalar_one()
             for role, name in PLACE_USERS[code].items()}
    branch = org.inst(code)
    marker = MARKERS[code]
    loan_a = make_loan(branch, users["officer"], borrower_name=f"{marker}甲", contract_no=f"{CONTRACT_PREFIX[code]}A",
                       disbursed_on=date(2024, 1, 5), maturity_on=AS_OF + timedelta(days=20))
    loan_b = make_loan(branch, users["officer"], borrower_name=f"{marker}乙", contract_no=f"{CONTRACT_PREFIX[code]}B",
                       status="overdue", days_past_due=100, interest_arrears_fen=120_000, amount_fen=60_000_000,
                       balance_fen=55_000_000, disbursed_on=date(2024, 1, 5), maturity_on=date(2026, 1, 5))
    db.session.flush()

    archivist = users["archivist"]
    archived = services.collect_document(archivist, borrower=loan_a.borrower, loan=loan_a, doc_type="loan_contract",
                                         fileobj=io.BytesIO(pdf_bytes(f"{marker} contract")),
                                         filename=f"{marker}借款合同.pdf").document
    services.sort_document(archivist, archived)
    services.file_document(archivist, archived)
    services.archive_document(archivist, archived)
    collected = services.collect_document(archivist, borrower=loan_b.borrower, loan=loan_b, doc_type="loan_receipt",
                                          fileobj=io.BytesIO(pdf_bytes(f"{marker} receipt")),
                                          filename=f"{marker}借据.pdf").document
    volume = services.volume_of(loan_a.borrower)
    lent = lending.request_lending(users["officer"], volume, [archived], medium="digital", reason="贷后检查调阅",
                                   days=7)
    moved = transfer.create_transfer(archivist, sender=branch, receiver=org.inst(COUNTY[code]), volumes=[volume],
                                     note="移交县联社")
    hold = holds.place_hold(archivist, kind="legal", reason="诉讼保全", loan=loan_a)
    dl = destruction.create_destruction_list(archivist, branch, "保管期满,经鉴定可销毁。")
    db.session.flush()
    return Place(code=code, institution=branch.id, province=PROVINCE[code], province_id=org.inst(PROVINCE[code]).id,
                 county=org.inst(COUNTY[code]).id,
                 loan=loan_a.id, borrower=loan_a.borrower_id, contract=loan_a.contract_no,
                 loan_b=loan_b.id, borrower_b=loan_b.borrower_id, contract_b=loan_b.contract_no,
                 volume=volume.id, doc_archived=archived.id, archive_number=archived.archive_number,
                 doc_collected=collected.id, lending=lent.id, transfer=moved.id, hold=hold.id,
                 destruction_list=dl.id, users={role: u.id for role, u in users.items()})


def _postloan_work(org, place: Place) -> None:
    """After the daily run: one inspection of each state, a review, a handover, a write-off."""
    from portal.accounts.models import User
    from portal.auditing.inspections import start_archive_inspection
    from portal.loans.models import Loan
    from portal.postloan import classification, closing, handover, inspections
    from portal.rules.lookup import rules_for
    from portal.postloan.models import Inspection, LoanNotice, RiskWarning

    users = {role: db.session.get(User, uid) for role, uid in place.users.items()}
    loan_a, loan_b = db.session.get(Loan, place.loan), db.session.get(Loan, place.loan_b)

    def complete(insp, on):
        results = {row["code"]: ("ok", "") for row in inspections.findings_for_form(insp, rules_for(insp.loan))}
        inspections.save_inspection(users["officer"], insp, method="on_site", inspected_on=on, results=results,
                                    conclusion="借款人经营正常,资金按约使用。", submit=True)

    first = db.session.execute(db.select(Inspection).filter_by(loan_id=loan_b.id, kind="first")).scalar_one()
    complete(first, date(2024, 1, 10))
    inspections.sign_off_inspection(users["director"], first, "同意")
    special = db.session.execute(db.select(Inspection).filter_by(loan_id=loan_b.id, kind="special")).scalars().first()
    routine = inspections.create_inspection(users["officer"], loan_a, "routine")
    complete(routine, AS_OF)
    warning = db.session.execute(db.select(RiskWarning).filter_by(loan_id=loan_b.id)).scalars().first()
    review = classification.start_review(users["director"], loan_b)
    notice = db.session.execute(db.select(LoanNotice).filter_by(loan_id=loan_a.id)).scalars().first() or \
        db.session.execute(db.select(LoanNotice).filter_by(loan_id=loan_b.id)).scalars().first()
    moved = handover.propose_handover(users["director"], users["officer"], users["post_loan"], [loan_a.id], "调岗")
    evidence = FileStorage(io.BytesIO(pdf_bytes(f"{place.code} 判决书")), filename="判决书.pdf")
    write_off = closing.request_write_off(users["officer"], loan_b, "借款人死亡,无财产可供执行", [evidence])
    db.session.flush()
    assert special is not None and warning is not None and notice is not None, place.code
    assert first.escalation_status == "pending", "a 60万 loan's report goes to the county"
    place.inspection_open, place.inspection_submitted, place.inspection_signed = special.id, routine.id, first.id
    place.report_file = first.report_file_id
    place.warning, place.review, place.notice = warning.id, review.id, notice.id
    place.handover, place.write_off = moved.id, write_off.id
    place.archive_inspection = start_archive_inspection(users["director"], loan_a.branch, 2).id


def build_world(app) -> World:
    """Create the organisation, the extra users and every place's objects; commit."""
    from portal.accounts.models import User
    from portal.accounts.services import create_user, hash_password
    from portal.postloan.daily import run_daily

    with app.app_context():
        org = make_org()
        hashed = hash_password(PASSWORD)
        for name, (inst, roles) in EXTRA_USERS.items():
            create_user(None, name, PASSWORD, inst, roles, display_name=name, password_hash=hashed)
        db.session.flush()
        for name, dept in {"officer": "信贷部", "director": "信贷部", "post_loan": "风险管理部",
                           "archivist": "综合部"}.items():
            org.user(name).department = dept
        places = {code: _build_place(org, code) for code in PLACES}
        db.session.commit()
        run_daily(AS_OF)
        db.session.commit()
        for place in places.values():
            _postloan_work(org, place)
        db.session.commit()
        user_ids = dict(db.session.execute(db.select(User.username, User.id)).all())
        db.session.remove()
    return World(app, org, places, user_ids)


def download_url(world: World, username: str, place: str) -> str:
    """A signed download link of the place's archived document, made for ``username``."""
    from portal.archive.models import Document
    from portal.archive.storage import current_store

    with world.app.test_request_context():
        doc = db.session.get(Document, world[place].doc_archived)
        url = current_store().url_for_download(doc.object_key, filename=doc.original_name, media_type=doc.media_type,
                                               inline=True, expires=timedelta(minutes=10),
                                               user_id=world.user_id(username))
        db.session.remove()
    return url


def index_everything(app) -> None:
    """Bring the search index up to date (the portal's drainer thread is off in tests)."""
    from portal.search.index import current_index
    from portal.search.queue import drain

    with app.app_context():
        current_index().open()
        drain(lock_timeout=5)
        db.session.remove()
