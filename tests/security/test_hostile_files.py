"""Hostile files through every way a file enters the portal: the archive's upload page, the
``flask archive ingest`` command, an inspection's attachments, the loan import — and then text
extraction for the search index. Each file is refused with a message or stored safely; never a
500, never a partial record (every table, and the object store, exactly as before a refusal), and
no ZIP part is ever inflated beyond a bound (a tripwire on ``zipfile`` watches every read).
"""
from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from portal.extensions import db

from tests.helpers.files import pdf_bytes

from . import hostile
from .checks import fingerprint

ARCHIVE_LIMIT_MB = 4           # the DOCX bomb (3 MB on disk) fits; the oversize file does not
INFLATE_LIMIT = 256 << 20      # more than this inflated from one ZIP part: something unpacks a bomb


@pytest.fixture()
def tripwire(monkeypatch):
    """Count what each ZIP part read inflates; past INFLATE_LIMIT note it and stop the read (so
    a bomb costs this test a quarter of a gigabyte, not three)."""
    tripped: list[str] = []
    original = zipfile.ZipExtFile._read1

    def bounded_read1(self, n):
        data = original(self, n)
        self._xd_inflated = getattr(self, "_xd_inflated", 0) + len(data)
        if self._xd_inflated > INFLATE_LIMIT:
            tripped.append(getattr(self, "name", "?"))
            raise zipfile.BadZipFile("tripwire: this ZIP part inflates beyond the test's bound")
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "_read1", bounded_read1)
    return tripped


@dataclass
class Setup:
    loan: int
    borrower: int
    contract: str
    inspection: int


@pytest.fixture()
def setup(app, store, monkeypatch, tripwire, make_loan, make_org):
    monkeypatch.setitem(app.config, "XINDANG_ARCHIVE_MAX_FILE_MB", ARCHIVE_LIMIT_MB)
    from portal.postloan.inspections import create_inspection
    with app.app_context():
        org = make_org()
        loan = make_loan(org.inst("B1"), org.user("officer"), borrower_name="王建国", amount_fen=60_000_000)
        insp = create_inspection(org.user("officer"), loan, "routine")
        db.session.commit()
        return Setup(loan.id, loan.borrower_id, loan.contract_no, insp.id)


def corpus() -> list[hostile.HostileFile]:
    return hostile.archive_corpus(ARCHIVE_LIMIT_MB << 20)


def safe_name(name: str) -> bool:
    """What the portal keeps as a file name: no directories, no control or bidi-override
    characters, not too long (the archive keeps 120 characters, post-loan files 120 and the
    extension), not empty."""
    return (0 < len(name) <= 130 and "/" not in name and "\\" not in name and not name.startswith(".")
            and not any(unicodedata.category(ch)[0] == "C" for ch in name))


def documents(app) -> list:
    from portal.archive.models import Document
    with app.app_context():
        rows = db.session.execute(select(Document).order_by(Document.id)).scalars().all()
        for row in rows:
            db.session.expunge(row)
        return rows


def assert_store_matches_rows(app, store) -> None:
    """Every object has its row and every live row its object: nothing half-stored."""
    from portal.archive.models import LIVE_STATES
    keys = set(store.iter_keys())
    rows = {d.object_key for d in documents(app) if d.state in LIVE_STATES}
    assert keys == rows, f"objects without rows: {keys - rows}; rows without objects: {rows - keys}"


def _message(response) -> str:
    text = response.get_data(as_text=True)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


# --- the archive's upload page ----------------------------------------------------------------

def test_upload_page(app, client, store, setup, tripwire, csrf_token, login):
    login(client, "officer")
    token = csrf_token(client, f"/archive/borrowers/{setup.borrower}/upload")
    for case in corpus():
        before, count = fingerprint(app), len(documents(app))
        response = client.post(f"/archive/borrowers/{setup.borrower}/upload",
                               data={"csrf_token": token, "doc_type": "loan_contract", "loan": "0",
                                     "files": [(io.BytesIO(case.content), case.filename)]},
                               headers={"Accept": "application/json"}, content_type="multipart/form-data")
        assert response.status_code < 500, (case.name, response.status_code)
        (result,) = response.get_json()["results"]
        if case.stored:
            assert response.status_code == 201 and result["ok"], (case.name, result)
            doc = documents(app)[-1]
            assert len(documents(app)) == count + 1
            assert safe_name(doc.original_name), (case.name, doc.original_name)
            assert store.hash_object(doc.object_key).sha256 == doc.sha256
            page = client.get(f"/archive/documents/{doc.id}")
            assert page.status_code == 200 and "<script>alert" not in page.get_data(as_text=True)
        else:
            assert response.status_code in (413, 422) and not result["ok"], (case.name, result)
            assert "refused" in result["message"] or "MB" in result["message"], result
            assert fingerprint(app) == before, f"{case.name}: the refusal left something behind"
        assert_store_matches_rows(app, store)
    assert not tripwire, f"something inflated a bomb: {tripwire}"


def test_upload_page_without_json_shows_the_refusal(app, client, store, setup, csrf_token, login):
    login(client, "officer")
    token = csrf_token(client, f"/archive/borrowers/{setup.borrower}/upload")
    response = client.post(f"/archive/borrowers/{setup.borrower}/upload",
                           data={"csrf_token": token, "doc_type": "loan_contract", "loan": "0",
                                 "files": [(io.BytesIO(hostile.html_pdf()), "借款合同.pdf")]},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    text = _message(response)
    assert "借款合同.pdf was refused: it is an HTML page" in text
    assert "<script>alert" not in response.get_data(as_text=True)


def test_a_downloaded_hostile_name_is_a_safe_header(app, client, store, setup, csrf_token, login):
    """The stored name goes back out in Content-Disposition: one header line, quoted safely."""
    login(client, "archivist")
    token = csrf_token(client, f"/archive/borrowers/{setup.borrower}/upload")
    for name in (hostile.MIXED_NAME, 'a"b;c\r\nX-Injected: 1.pdf', hostile.NUL_NAME):
        response = client.post(f"/archive/borrowers/{setup.borrower}/upload",
                               data={"csrf_token": token, "doc_type": "loan_contract", "loan": "0",
                                     "files": [(io.BytesIO(pdf_bytes(name)), name)]},
                               content_type="multipart/form-data")
        assert response.status_code == 303, _message(response)
        doc = documents(app)[-1]
        link = client.get(f"/archive/documents/{doc.id}/open?download=1")
        download = client.get(link.headers["Location"])
        disposition = download.headers["Content-Disposition"]
        assert download.status_code == 200 and download.data.startswith(b"%PDF")
        assert "\r" not in disposition and "\n" not in disposition and "X-Injected" not in download.headers
        assert re.fullmatch(r'attachment; filename="[^"\\]*"; filename\*=UTF-8\'\'[A-Za-z0-9%._~-]+', disposition), \
            disposition


# --- flask archive ingest ---------------------------------------------------------------------

def test_ingest_command(app, runner, store, setup, tmp_path, tripwire):
    """Names a file system can hold: long, mixed scripts with a bidi override, backslashes,
    leading dots (names with "/" or NUL cannot reach the command)."""
    contents = ("oversize", "html as pdf", "truncated pdf", "docx bomb", "png bomb")
    files = [(case.filename, case.content, case.stored) for case in corpus() if case.name in contents]
    files += [("借款合同" * 20 + ".pdf", pdf_bytes("long"), True),                       # 244 bytes
              (hostile.MIXED_NAME.replace("/", "_"), pdf_bytes("mixed"), True),
              ("..\\..\\windows\\win.ini.pdf", pdf_bytes("backslash"), True),
              ("..pdf", pdf_bytes("dots"), True), ("-rf.pdf", pdf_bytes("dash"), True)]
    paths, expected = [], {}
    for name, content, stored in files:
        path = tmp_path / "scans" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        paths.append(path)
        expected[str(path)] = stored
    result = runner.invoke(args=["archive", "ingest", *map(str, paths), "--loan", setup.contract,
                                 "--type", "loan_contract", "--user", "archivist"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1, result.output
    for path, stored in expected.items():
        if stored:
            assert f"stored {path} as document" in result.output, (path, result.output)
        else:
            assert re.search(rf"REFUSED {re.escape(path)}: \S", result.output), (path, result.output)
    docs = documents(app)
    assert len(docs) == sum(expected.values())
    assert all(safe_name(d.original_name) for d in docs), [d.original_name for d in docs]
    assert_store_matches_rows(app, store)
    assert not tripwire, f"something inflated a bomb: {tripwire}"


# --- an inspection's attachments ---------------------------------------------------------------

def postloan_files(app, **filters) -> list:
    from portal.postloan.models import PostloanFile
    with app.app_context():
        rows = db.session.execute(select(PostloanFile).filter_by(**filters).order_by(PostloanFile.id)).scalars().all()
        for row in rows:
            db.session.expunge(row)
        return rows


ATTACHMENT_KINDS = {"truncated pdf", "png bomb"}  # PDF, JPEG, PNG and TIFF scans are attachments


def test_inspection_attachments(app, client, store, setup, tripwire, csrf_token, login):
    """Refused: anything not a PDF or image by its bytes, and a file larger than the archive
    takes (it joins the credit file at sign-off). Kept: the rest, under a safe name; and the
    sign-off then files them into the credit file without a 500."""
    login(client, "officer")
    token = csrf_token(client, f"/postloan/inspections/{setup.inspection}")
    for case in corpus():
        before, count = fingerprint(app), len(postloan_files(app, owner_kind="inspection"))
        response = client.post(f"/postloan/inspections/{setup.inspection}/attachments",
                               data={"csrf_token": token, "files": [(io.BytesIO(case.content), case.filename)]},
                               content_type="multipart/form-data")
        assert response.status_code < 500, (case.name, response.status_code)
        kept = case.name in ATTACHMENT_KINDS or (case.stored and case.content.startswith(b"%PDF"))
        if kept:
            assert response.status_code == 302, (case.name, _message(response))
            record = postloan_files(app, owner_kind="inspection")[-1]
            assert len(postloan_files(app, owner_kind="inspection")) == count + 1
            assert safe_name(record.filename), (case.name, record.filename)
        else:
            assert response.status_code in (413, 422), (case.name, response.status_code)
            assert "is not a PDF, JPEG, PNG or TIFF file" in _message(response) or "larger than" in _message(response)
            assert fingerprint(app) == before, f"{case.name}: the refusal left something behind"

    # The director signs the inspection off: the report and every attachment join the credit file.
    from portal.accounts.models import User
    from portal.postloan import inspections
    from portal.rules.lookup import rules_for
    from portal.postloan.models import Inspection
    with app.app_context():
        insp = db.session.get(Inspection, setup.inspection)
        officer = db.session.execute(select(User).filter_by(username="officer")).scalar_one()
        results = {row["code"]: ("ok", "") for row in inspections.findings_for_form(insp, rules_for(insp.loan))}
        inspections.save_inspection(officer, insp, method="on_site", inspected_on=insp.raised_on, results=results,
                                    conclusion="正常", submit=True)
        db.session.commit()
    director = app.test_client()
    login(director, "director")
    signed = director.post(f"/postloan/inspections/{setup.inspection}/sign-off",
                           data={"csrf_token": csrf_token(director, "/"), "opinion": "同意"})
    assert signed.status_code == 302, _message(signed)
    attachments = postloan_files(app, owner_kind="inspection", generated=False)
    assert attachments and all(f.archive_document_id for f in attachments)
    assert all(safe_name(d.original_name) for d in documents(app))
    assert_store_matches_rows(app, store)
    assert not tripwire, f"something inflated a bomb: {tripwire}"


# --- the loan import -------------------------------------------------------------------------

def import_corpus() -> list[tuple[str, str, bytes]]:
    """(case, file name, content): none of these is a loan file."""
    return [
        ("html under .csv", "贷款台账.csv", hostile.html_pdf()),
        ("html under .xlsx", "贷款台账.xlsx", "<html><table><tr><td>合同编号</td></tr></table></html>".encode()),
        ("truncated pdf", "台账.pdf", hostile.truncated_pdf()),
        ("docx bomb", "台账.docx", hostile.docx_bomb()),
        ("docx bomb under .xlsx", "台账.xlsx", hostile.docx_bomb()),
        ("xlsx bomb (3 GB of shared strings)", "台账.xlsx", hostile.xlsx_bomb(3)),
        ("png bomb", "台账.png", hostile.png_bomb()),
        ("truncated xlsx", "台账.xlsx", hostile.xlsx_bomb(1)[:4096]),
        ("empty", "台账.csv", b""),
        ("binary", "台账.csv", bytes(range(256)) * 64),
    ]


def test_loan_import(app, client, setup, tripwire, monkeypatch, csrf_token, login):
    from portal.loans.importing.columns import sample_csv
    from portal.loans.models import Loan

    login(client, "director")
    for name, filename, content in import_corpus():
        before = fingerprint(app)
        token = csrf_token(client, "/loans/import")
        response = client.post("/loans/import", data={"csrf_token": token, "file": (io.BytesIO(content), filename)},
                               content_type="multipart/form-data")
        assert response.status_code in (400, 413, 422), (name, response.status_code)
        text = _message(response)
        assert "Nothing" in text or "not a CSV or XLSX" in text or "cannot be read" in text or "empty" in text \
            or "too large" in text or "Choose a file" in text, (name, text[:2000])
        assert fingerprint(app) == before, f"{name}: the refusal left something behind"
    assert not tripwire, f"something inflated a bomb: {tripwire}"

    # Too large: the request (the page's limit) and the rows (the import's own limit).
    good_row = sample_csv().splitlines()[1]
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1 << 20)
    before = fingerprint(app)
    token = csrf_token(client, "/loans/import")
    response = client.post("/loans/import", data={"csrf_token": token,
                                                  "file": (io.BytesIO(b"x" * (2 << 20)), "台账.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 413 and "larger than the portal accepts" in _message(response)
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 256 << 20)
    monkeypatch.setitem(app.config, "XINDANG_IMPORT_MAX_ROWS", 5)
    many = (sample_csv() + "\n".join([good_row] * 20)).encode()
    response = client.post("/loans/import", data={"csrf_token": csrf_token(client, "/loans/import"),
                                                  "file": (io.BytesIO(many), "台账.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "Nothing" in _message(response), _message(response)[:2000]
    monkeypatch.setitem(app.config, "XINDANG_IMPORT_MAX_ROWS", 200_000)
    assert fingerprint(app) == before

    # A good file under a hostile name: imported, and the name is shown and kept harmlessly.
    good = sample_csv().encode("utf-8")
    with app.app_context():
        loans = db.session.execute(select(func.count()).select_from(Loan)).scalar_one()
    for filename in (hostile.NUL_NAME, hostile.MIXED_NAME, hostile.LONG_NAME, "../../../etc/loans.csv"):
        token = csrf_token(client, "/loans/import")
        response = client.post("/loans/import", data={"csrf_token": token, "file": (io.BytesIO(good), filename)},
                               content_type="multipart/form-data")
        assert response.status_code == 200, (filename, _message(response)[:2000])
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Loan)).scalar_one() == loans + 1


def test_loan_import_command(app, runner, setup, tmp_path, tripwire):
    """``flask loans import FILE``: each hostile file is refused with exit status 1 and a
    reason, nothing written."""
    before = fingerprint(app)
    for name, filename, content in import_corpus():
        path = tmp_path / name.replace(" ", "_").replace("/", "_") / filename
        path.parent.mkdir()
        path.write_bytes(content)
        result = runner.invoke(args=["loans", "import", str(path), "--user", "director"])
        assert result.exception is None or isinstance(result.exception, SystemExit), (name, result.output)
        assert result.exit_code == 1, (name, result.exit_code, result.output)
        assert "Nothing was imported" in result.output, (name, result.output)
    assert fingerprint(app) == before
    assert not tripwire, f"something inflated a bomb: {tripwire}"


# --- text extraction for the search index ------------------------------------------------------

def test_text_extraction_records_failures(app, client, store, setup, tripwire, monkeypatch, csrf_token, login):
    """Every stored hostile file goes through the search queue's extraction: each ends with a
    recorded outcome, the drainer survives, and the bomb is refused by its declared size."""
    from portal.search.models import DocumentText
    from portal.search.queue import drain

    monkeypatch.setitem(app.config, "XINDANG_OCR_TIMEOUT", 20)
    login(client, "officer")
    token = csrf_token(client, f"/archive/borrowers/{setup.borrower}/upload")
    for case in corpus():
        if case.stored:
            response = client.post(f"/archive/borrowers/{setup.borrower}/upload",
                                   data={"csrf_token": token, "doc_type": "loan_contract", "loan": "0",
                                         "files": [(io.BytesIO(case.content), case.filename)]},
                                   content_type="multipart/form-data")
            assert response.status_code == 303, (case.name, _message(response))
    stored = {d.id: d for d in documents(app)}
    with app.app_context():
        from portal.search.index import current_index
        current_index().open()
        drain(lock_timeout=5)
        texts = {t.document_id: t for t in db.session.execute(select(DocumentText)).scalars()}
        db.session.remove()
    assert set(texts) == set(stored), "a document has no recorded extraction outcome"
    for doc_id, text in texts.items():
        assert text.status in ("ok", "failed", "unsupported", "ocr-missing"), (stored[doc_id].original_name, text.status)
    by_name = {stored[i].original_name: t for i, t in texts.items()}
    bomb = next(t for name, t in by_name.items() if name.endswith(".docx"))
    assert bomb.status == "failed" and bomb.error, (bomb.status, bomb.error)
    truncated = next(t for name, t in by_name.items() if name.startswith("截断"))
    assert truncated.status == "failed"
    assert not tripwire, f"text extraction inflated a bomb: {tripwire}"
