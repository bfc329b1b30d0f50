"""What a file is, from its bytes; safe names; page counts."""
import io
import zipfile

import pytest

from portal.archive.sniffing import ACCEPTED, claimed_kind, count_pages, sanitise_filename, sniff

from tests.helpers.files import pdf_bytes

from .archive_helpers import PNG_BYTES


def _zip(names: list[str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name in names:
            zf.writestr(name, "<x/>")
    return out.getvalue()


@pytest.mark.parametrize("data, kind", [
    (pdf_bytes(), "pdf"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32, "jpeg"),
    (PNG_BYTES, "png"),
    (b"II*\x00" + b"\x00" * 32, "tiff"),
    (b"MM\x00*" + b"\x00" * 32, "tiff"),
    (_zip(["[Content_Types].xml", "word/document.xml"]), "docx"),
    (_zip(["[Content_Types].xml", "xl/workbook.xml"]), "xlsx"),
])
def test_accepted_kinds(app_ctx, data, kind):
    stream = io.BytesIO(data)
    stream.seek(0)
    result = sniff(stream)
    assert result.accepted and result.kind.code == kind
    assert stream.tell() == 0  # left where it was found


@pytest.mark.parametrize("data, words", [
    (b"GIF89a\x01\x00", "GIF image"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16, "old Office document"),
    (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML page"),
    ("借款合同 plain words".encode(), "plain text"),
    (b"", "empty file"),
    (b"MZ\x90\x00\x03", "Windows program"),
    (_zip(["readme.txt"]), "ZIP archive"),
    (_zip(["ppt/presentation.xml"]), "PowerPoint"),
    (b"\x00\x01\x02\x03\x04\x05\x06\x07\x08", "unrecognised binary data (starting 00 01 02 03"),
])
def test_refused_kinds_say_what_was_received(app_ctx, data, words):
    result = sniff(io.BytesIO(data))
    assert not result.accepted
    assert words in result.received


@pytest.mark.parametrize("name, kind, expected", [
    ("借款合同.PDF", "pdf", "借款合同.pdf"),
    ("../../etc/passwd.pdf", "pdf", "passwd.pdf"),
    ("C:\\scans\\贷后检查报告 2024.pdf", "pdf", "贷后检查报告 2024.pdf"),
    ("a<b>c|d?.jpg", "jpeg", "a_b_c_d.jpg"),
    ("scan", "tiff", "scan.tif"),
    (".hidden.png", "png", "hidden.png"),
    ("x" * 300 + ".pdf", "pdf", "x" * 116 + ".pdf"),
    ("na\x00me\r\n.pdf", "pdf", "name.pdf"),
    ("", "pdf", "document.pdf"),
    ("$(rm -rf);`x`.docx", "docx", "(rm -rf)_x.docx"),
])
def test_file_names_are_sanitised(name, kind, expected):
    assert sanitise_filename(name, ACCEPTED[kind]) == expected


def test_claimed_kind_from_extension():
    assert claimed_kind("a.PDF") == "pdf" and claimed_kind("b.jpeg") == "jpeg" and claimed_kind("c.txt") is None


def test_page_count():
    assert count_pages(io.BytesIO(pdf_bytes(pages=3)), ACCEPTED["pdf"]) == 3
    assert count_pages(io.BytesIO(PNG_BYTES), ACCEPTED["png"]) == 1
    assert count_pages(io.BytesIO(b"%PDF-1.4 broken"), ACCEPTED["pdf"]) is None
