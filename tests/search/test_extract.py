"""Text extraction of every accepted kind of file, found by Chinese phrases after upload; failures
recorded and retryable; OCR of scans where Tesseract with chi_sim is installed."""
from __future__ import annotations

import io
import subprocess

import pytest

from portal.extensions import db
from portal.search.extract import extract_text, ocr_available

from tests.helpers.files import docx_bytes

from .search_helpers import add_document, drain_all, search_as


def cjk_font_path() -> str | None:
    """A font with Chinese glyphs, from fontconfig."""
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    paths = [line.split(":")[0].strip() for line in out.splitlines() if line.strip()]
    return sorted(paths)[0] if paths else None


def pdf_with_text(*lines: str) -> bytes:
    import weasyprint

    body = "".join(f"<p>{line}</p>" for line in lines)
    return weasyprint.HTML(string=f"<html><body style='font-family: sans-serif'>{body}</body></html>").write_pdf()


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "贷款台账"
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def scan_image(lines: list[str], fmt: str = "PNG") -> bytes:
    """A page-like image of Chinese text, as a scanner would produce."""
    from PIL import Image, ImageDraw, ImageFont

    font_path = cjk_font_path()
    if font_path is None:
        pytest.skip("SKIPPING OCR test — no font with Chinese glyphs (fc-list :lang=zh); run scripts/system-deps.sh")
    font = ImageFont.truetype(font_path, 44)
    image = Image.new("L", (1240, 160 + 90 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((80, 80 + 90 * i), line, font=font, fill=0)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def require_ocr():
    if not ocr_available("chi_sim"):
        pytest.skip("SKIPPING OCR test — tesseract with the chi_sim model is not installed; "
                    "run scripts/system-deps.sh (apt: tesseract-ocr tesseract-ocr-chi-sim)")


def test_pdf_docx_and_xlsx_are_found_by_chinese_phrases(app, world):
    pdf = add_document(app, world, pdf_with_text("贷前调查报告", "借款人王建国经营柑橘园十二亩，还款来源稳定。"), "调查报告.pdf",
                       doc_type="investigation_report")
    word = add_document(app, world, docx_bytes("贷后检查报告", "检查发现借款人挪用贷款资金购买农用车辆。"), "检查.docx",
                        doc_type="inspection_report")
    sheet = add_document(app, world, xlsx_bytes([["借款人", "五级分类", "余额"], ["王建国", "关注", 50000]]), "台账.xlsx",
                         doc_type="risk_classification")
    result = drain_all(app)
    assert result.extracted == 3 and result.failed == 0
    assert search_as(app, "archivist", "柑橘园十二亩")[1] == [pdf]
    assert search_as(app, "archivist", '"挪用贷款资金"')[1] == [word]
    assert search_as(app, "archivist", "贷款台账")[1] == [sheet]        # the sheet's name
    assert search_as(app, "archivist", "五级分类 关注")[1] == [sheet]
    total, _ids, extra = search_as(app, "archivist", "挪用")
    assert "<mark>挪用</mark>" in extra["snippets"][0]


def test_a_scanned_image_is_read_by_ocr_and_found(app, world):
    require_ocr()
    scan = add_document(app, world, scan_image(["贷后检查报告", "借款人挪用贷款资金"]), "扫描件.png",
                        doc_type="inspection_report")
    drain_all(app)
    assert search_as(app, "archivist", "挪用贷款资金")[1] == [scan]
    with app.app_context():
        from portal.search.models import DocumentText
        row = db.session.get(DocumentText, scan)
        assert (row.status, row.method) == ("ok", "ocr:chi_sim")


def test_a_scanned_pdf_without_a_text_layer_is_read_by_ocr(app, world):
    require_ocr()
    from PIL import Image

    image = Image.open(io.BytesIO(scan_image(["他项权证已收回", "结清证明"])))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PDF")
    doc = add_document(app, world, out.getvalue(), "扫描.pdf", doc_type="settlement_certificate")
    drain_all(app)
    assert search_as(app, "archivist", "他项权证已收回")[1] == [doc]


def test_without_ocr_a_scan_is_indexed_by_its_metadata_and_says_why(app, world, monkeypatch):
    monkeypatch.setitem(app.config, "XINDANG_OCR_LANG", "zz_not_installed")
    png = scan_image(["借款人挪用贷款资金"])
    scan = add_document(app, world, png, "扫描件.png", doc_type="inspection_report")
    result = drain_all(app)
    assert result.failed == 0
    assert search_as(app, "archivist", "王建国")[1] == [scan]          # the borrower's name: metadata
    with app.app_context():
        from portal.search.models import DocumentText
        row = db.session.get(DocumentText, scan)
        assert row.status == "ocr-missing" and "not installed" in row.error


def test_a_broken_file_is_recorded_shown_and_retried(app, world, client, monkeypatch, csrf_token, login):
    doc = add_document(app, world, docx_bytes("借款合同"), "合同.docx")
    import portal.search.extract as extract

    original_docx = extract._docx
    monkeypatch.setattr(extract, "_docx", lambda data: (_ for _ in ()).throw(ValueError("zip file damaged")))
    assert drain_all(app).failed == 0                                   # recorded, not a queue failure
    with app.app_context():
        from portal.search.models import DocumentText
        row = db.session.get(DocumentText, doc)
        assert row.status == "failed" and row.error == "ValueError: zip file damaged"
    panel = document_text_panel(app, world, doc)
    assert "Extraction failed" in panel and "ValueError: zip file damaged" in panel
    assert "Extract the text again" in panel
    monkeypatch.setattr(extract, "_docx", original_docx)
    login(client, "archivist")
    token = csrf_token(client, "/search/")
    response = client.post(f"/search/documents/{doc}/extract", data={"csrf_token": token})
    assert response.status_code == 302
    drain_all(app)
    with app.app_context():
        from portal.search.models import DocumentText
        assert db.session.get(DocumentText, doc).status == "ok"
    assert search_as(app, "archivist", '"借款合同"')[1] == [doc]


def document_text_panel(app, world, document_id: int, username: str = "archivist") -> str:
    """The panel the archive's document page includes (search/_document_text.html)."""
    from flask import render_template
    from flask_login import login_user

    from portal.archive.models import Document

    with app.test_request_context():
        login_user(world.org.user(username))
        return render_template("search/_document_text.html", doc=db.session.get(Document, document_id))


def test_extraction_never_raises_for_a_bad_file():
    for media_type in ("application/pdf", "image/png",
                       "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                       "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"):
        result = extract_text(b"not really a file", media_type, ocr_lang="chi_sim")
        assert result.status in ("failed", "ocr-missing"), media_type
    assert extract_text(b"x", "application/zip").status == "unsupported"
