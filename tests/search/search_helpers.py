"""What the search tests share: a small archive with a loan in branch B1 and one in B2
(``make_world``; the ``world`` fixture), documents collected into it through the archive's own
service, the search queue drained, and searches as a user, each in a short app context."""
from __future__ import annotations

import io
from dataclasses import dataclass

from portal.extensions import db

from tests.helpers.factories import make_loan, make_org


@dataclass
class World:
    org: object
    b1_loan: int
    b1_borrower: int
    b1_contract: str
    b2_loan: int
    b2_borrower: int
    b2_contract: str


def make_world(app) -> World:
    with app.app_context():
        org = make_org()
        b1 = make_loan(org.inst("B1"), org.user("officer"), borrower_name="王建国", contract_no="XY2024-001",
                       id_number="430101198001011234")
        b2 = make_loan(org.inst("B2"), org.user("officer2"), borrower_name="李秀英", contract_no="HX2024-777",
                       id_number="430102199002025678")
        db.session.commit()
        return World(org, b1.id, b1.borrower_id, b1.contract_no, b2.id, b2.borrower_id, b2.contract_no)


def add_document(app, world: World, content: bytes, filename: str, *, branch: str = "B1",
                 doc_type: str = "loan_contract", actor: str | None = None) -> int:
    """Collect a file into the credit file of the branch's borrower; commit; return its id."""
    from portal.archive.services import collect_document
    from portal.loans.models import Borrower, Loan

    with app.app_context():
        loan = db.session.get(Loan, world.b1_loan if branch == "B1" else world.b2_loan)
        borrower = db.session.get(Borrower, loan.borrower_id)
        user = world.org.user(actor or ("archivist" if branch == "B1" else "county_archivist"))
        collected = collect_document(user, borrower=borrower, loan=loan, doc_type=doc_type,
                                     fileobj=io.BytesIO(content), filename=filename)
        db.session.commit()
        return collected.document.id


def drain_all(app, **kwargs):
    from portal.search.queue import drain

    with app.app_context():
        result = drain(lock_timeout=kwargs.pop("lock_timeout", 5), **kwargs)
        db.session.remove()
        return result


def search_as(app, username: str, text: str, **kwargs):
    """search_documents as this user, inside a short app context; returns (total, ids, page)."""
    from portal.search.query import search_documents

    from portal.accounts.models import User

    with app.test_request_context():
        user = db.session.execute(db.select(User).filter_by(username=username)).scalar_one()
        page = search_documents(user, text, kwargs.pop("filters", None), **kwargs)
        ids = [h.document.id for h in page.hits]
        snippets = [str(h.snippet) for h in page.hits]
        result = (page.total, ids, {"error": page.error, "notice": page.notice, "snippets": snippets,
                                    "facets": page.facets, "pages": page.pages})
        db.session.remove()
        return result
