"""Files built in memory for uploads (Word, PDF), and the text of files the portal sends back."""
from __future__ import annotations

import io
import re
import uuid


def docx_bytes(*paragraphs: str) -> bytes:
    """A Word document with these paragraphs (an upload with text to extract)."""
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_text(data: bytes) -> str:
    """The paragraphs of a Word document, one a line."""
    import docx

    return "\n".join(p.text for p in docx.Document(io.BytesIO(data)).paragraphs)


def pdf_bytes(text: str | None = None, pages: int = 1) -> bytes:
    """A small valid PDF with ``pages`` blank pages; ``text`` (default: random) as its title makes
    it unique."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": text or uuid.uuid4().hex})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_text(data: bytes) -> str:
    """The text of every page of a PDF."""
    from pypdf import PdfReader

    assert data.startswith(b"%PDF-"), data[:200]
    return "".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def pdf_text_without_spaces(data: bytes) -> str:
    """The PDF's text with all white space removed (table cells wrap Chinese anywhere)."""
    return re.sub(r"\s+", "", pdf_text(data))
