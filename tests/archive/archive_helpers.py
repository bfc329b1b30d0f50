"""What the archive tests share: a credit file with the people who work on it
(``make_archive_setup``), documents archived through the services, uploads and form posts
through the pages, and rows read back in a short app context."""
from __future__ import annotations

import io
from dataclasses import dataclass

from portal.archive import services
from portal.extensions import db

from tests.helpers.factories import make_loan, make_org
from tests.helpers.files import pdf_bytes
from tests.helpers.web import csrf_token

PNG_BYTES = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
             b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND"
             b"\xaeB`\x82")


# --- a credit file with the people who work on it -------------------------------------------

DEPARTMENTS = {"officer": "信贷部", "director": "信贷部", "post_loan": "风险管理部", "archivist": "综合部",
               "county_archivist": "综合部", "officer2": "信贷部"}


@dataclass
class ArchiveSetup:
    org: object
    loan_id: int
    borrower_id: int
    contract_no: str
    other_loan_id: int        # in branch B2
    other_borrower_id: int


def make_archive_setup(app, **loan_fields) -> ArchiveSetup:
    with app.app_context():
        org = make_org()
        for name, dept in DEPARTMENTS.items():
            org.user(name).department = dept
        loan = make_loan(org.inst("B1"), org.user("officer"), borrower_name="王建国", **loan_fields)
        other = make_loan(org.inst("B2"), org.user("officer2"), borrower_name="李秀英")
        db.session.commit()
        return ArchiveSetup(org, loan.id, loan.borrower_id, loan.contract_no, other.id, other.borrower_id)


def archived_documents(app, setup, count=1, paper=False):
    """Documents collected, sorted, filed and archived by the archivist (through the services)."""
    from portal.loans.models import Loan
    ids = []
    with app.app_context():
        archivist = setup.org.user("archivist")
        loan = db.session.get(Loan, setup.loan_id)
        for i in range(count):
            doc = services.collect_document(archivist, borrower=loan.borrower, loan=loan, doc_type="loan_contract",
                                            fileobj=io.BytesIO(pdf_bytes()), filename=f"借款合同{i}.pdf",
                                            paper_original=paper).document
            services.sort_document(archivist, doc)
            services.file_document(archivist, doc)
            services.archive_document(archivist, doc, shelf_location="B-01" if paper else None)
            ids.append(doc.id)
        volume_id = doc.volume_id
        db.session.commit()
    return volume_id, ids


def upload(client, borrower_id: int, files: list[tuple[bytes, str]], *, doc_type: str = "loan_contract",
           loan_id: int | None = None, paper: bool = False, json: bool = False, version_of: int | None = None):
    token = csrf_token(client, f"/archive/borrowers/{borrower_id}/upload")
    data = {"csrf_token": token, "doc_type": doc_type, "loan": str(loan_id or 0),
            "files": [(io.BytesIO(content), name) for content, name in files]}
    if paper:
        data["paper_original"] = "y"
    if version_of:
        data["version_of"] = str(version_of)
    headers = {"Accept": "application/json"} if json else {}
    return client.post(f"/archive/borrowers/{borrower_id}/upload", data=data, headers=headers,
                       content_type="multipart/form-data")


def post(client, path: str, data: dict | None = None, page: str = "/archive/"):
    return client.post(path, data={"csrf_token": csrf_token(client, page), **(data or {})})


def document_ids(app, borrower_id: int) -> list[int]:
    from portal.archive.models import Document
    with app.app_context():
        return list(db.session.execute(db.select(Document.id).where(Document.borrower_id == borrower_id)
                                       .order_by(Document.id)).scalars())


def get_document(app, document_id: int):
    """A detached snapshot of the row (inside a short app context)."""
    from portal.archive.models import Document
    with app.app_context():
        doc = db.session.get(Document, document_id)
        db.session.expunge(doc)
        return doc
