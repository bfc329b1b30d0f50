"""Text extraction: what a stored file says, as plain text for the index and for highlights.

PDF (pypdf; pages without a text layer are scans, whose images go to OCR), DOCX (python-docx:
paragraphs and tables), XLSX (openpyxl: every cell), JPEG/PNG/TIFF (OCR). OCR is the
``tesseract`` program with the Simplified Chinese model (Debian: tesseract-ocr,
tesseract-ocr-chi-sim; ``scripts/system-deps.sh`` installs them), run with a time limit and one
thread. Where it is missing the result says so (status ``ocr-missing``) and the document is still
indexed by its metadata.

Nothing here raises for a bad file: every outcome is an ``Extraction`` with a status, which the
drainer records in ``document_text``. No Flask, no database.
"""
from __future__ import annotations

import functools
import io
import logging
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass

from .analysis import normalize

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 2_000_000          # longer texts are cut (a 1,000-page file is still findable)
MIN_PAGE_TEXT = 10                  # fewer characters than this on a PDF page: it is a scan
MAX_OCR_IMAGES = 200                # images of one PDF sent to OCR
MAX_UNPACKED_BYTES = 256 * 2**20    # a DOCX/XLSX unpacking to more is not opened (a ZIP bomb)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
IMAGES = {"image/jpeg", "image/png", "image/tiff"}


@dataclass(frozen=True)
class Extraction:
    text: str
    status: str               # ok | failed | unsupported | ocr-missing (models.TextStatus)
    method: str | None
    error: str | None = None


class OcrUnavailable(Exception):
    """tesseract, or its model for the language, is not installed."""


def clean_text(text: str) -> str:
    """Normalised (see ``analysis.normalize``: NFKC, no spaces between Chinese characters, which
    OCR output and PDF line breaks put there), without NULs, blank runs squeezed, and capped."""
    text = normalize(text.replace("\x00", ""))
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r"\n\s*\n+", "\n", text).strip()
    return text[:MAX_TEXT_CHARS]


# -- OCR ----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def ocr_languages(binary: str = "tesseract") -> frozenset[str]:
    """Languages tesseract has models for; empty if tesseract is not installed."""
    path = shutil.which(binary)
    if path is None:
        return frozenset()
    try:
        out = subprocess.run([path, "--list-langs"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    lines = (out.stdout + out.stderr).splitlines()
    return frozenset(line.strip() for line in lines[1:] if line.strip() and " " not in line.strip())


def ocr_available(lang: str) -> bool:
    return all(part in ocr_languages() for part in lang.split("+"))


def ocr_image(data: bytes, *, lang: str, timeout: float, suffix: str = ".png") -> str:
    """Text of an image (all pages of a TIFF) by tesseract. Raises OcrUnavailable,
    subprocess.TimeoutExpired, or RuntimeError with tesseract's message."""
    if not ocr_available(lang):
        raise OcrUnavailable(lang)
    with tempfile.NamedTemporaryFile(suffix=suffix) as image:
        image.write(data)
        image.flush()
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}   # one core: the portal shares the machine
        # Page segmentation 4, one column of lines of any size: keeps a form's label and value on
        # one line, where the default (3) splits a sparse page into columns and reorders it.
        result = subprocess.run([shutil.which("tesseract") or "tesseract", image.name, "stdout", "-l", lang,
                                 "--psm", "4"], capture_output=True, timeout=timeout, env=env, check=False)
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError("tesseract: " + (message[-1] if message else f"exit status {result.returncode}"))
    return result.stdout.decode("utf-8", "replace")


# -- formats ------------------------------------------------------------------------------------

def _pdf(data: bytes, lang: str, timeout: float) -> Extraction:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            reader.decrypt("")
        except Exception as exc:  # noqa: BLE001
            return Extraction("", "failed", "pdf-text", f"encrypted PDF: {exc}")
    texts: list[str] = []
    scanned_images: list[tuple[int, bytes, str]] = []
    for number, page in enumerate(reader.pages):
        text = page.extract_text() or ""
        texts.append(text)
        if len(text.strip()) < MIN_PAGE_TEXT:
            try:
                for image in page.images:
                    if len(scanned_images) < MAX_OCR_IMAGES:
                        scanned_images.append((number, image.data, os.path.splitext(image.name)[1] or ".png"))
            except Exception:  # noqa: BLE001 - an unreadable image leaves that page without text
                log.warning("could not read the images of PDF page %d", number + 1, exc_info=True)
    if not scanned_images:
        return Extraction(clean_text("\n".join(texts)), "ok", "pdf-text")
    if not ocr_available(lang):
        return Extraction(clean_text("\n".join(texts)), "ocr-missing", "pdf-text",
                          f"{len(scanned_images)} scanned page image(s) not read: OCR ({lang}) is not installed")
    for number, image, _suffix in scanned_images:
        texts[number] += "\n" + ocr_image(_as_png(image), lang=lang, timeout=timeout, suffix=".png")
    method = "pdf-ocr" if all(len(t.strip()) < MIN_PAGE_TEXT for t in texts if t) else "pdf-text+ocr"
    return Extraction(clean_text("\n".join(texts)), "ok", method)


def _as_png(data: bytes) -> bytes:
    """Image bytes as PNG (PDF images come as JPEG, JPX, raw …; tesseract reads PNG surely)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        out = io.BytesIO()
        img.save(out, format="PNG")
        return out.getvalue()


def _unpacked_too_large(data: bytes) -> str | None:
    """Why a Word or Excel file is not opened: its parts unpack to more than MAX_UNPACKED_BYTES
    (a ZIP bomb). The declared sizes bound what ``zipfile`` inflates, so they are what counts."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        total = sum(entry.file_size for entry in archive.infolist())
    if total > MAX_UNPACKED_BYTES:
        return f"its parts unpack to {total / 2**20:,.0f} MB, more than {MAX_UNPACKED_BYTES // 2**20} MB: not read"
    return None


def _docx(data: bytes) -> Extraction:
    import docx

    document = docx.Document(io.BytesIO(data))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" ".join(cell.text for cell in row.cells))
    for section in document.sections:
        for block in (section.header, section.footer):
            parts.extend(p.text for p in block.paragraphs)
    return Extraction(clean_text("\n".join(parts)), "ok", "docx")


def _xlsx(data: bytes) -> Extraction:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    parts: list[str] = []
    try:
        for sheet in book.worksheets:
            parts.append(sheet.title)
            for row in sheet.iter_rows(values_only=True):
                cells = [str(v) for v in row if v is not None and str(v).strip()]
                if cells:
                    parts.append(" ".join(cells))
    finally:
        book.close()
    return Extraction(clean_text("\n".join(parts)), "ok", "xlsx")


def _image(data: bytes, media_type: str, lang: str, timeout: float) -> Extraction:
    if not ocr_available(lang):
        return Extraction("", "ocr-missing", None, f"OCR ({lang}) is not installed")
    suffix = {"image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tif"}[media_type]
    return Extraction(clean_text(ocr_image(data, lang=lang, timeout=timeout, suffix=suffix)), "ok", f"ocr:{lang}")


def extract_text(data: bytes, media_type: str, *, ocr_lang: str = "chi_sim", ocr_timeout: float = 120) -> Extraction:
    """The text of a file of ``media_type``; never raises for a bad file."""
    try:
        if media_type == "application/pdf":
            return _pdf(data, ocr_lang, ocr_timeout)
        if media_type in (DOCX, XLSX) and (too_large := _unpacked_too_large(data)):
            return Extraction("", "failed", None, too_large)
        if media_type == DOCX:
            return _docx(data)
        if media_type == XLSX:
            return _xlsx(data)
        if media_type in IMAGES:
            return _image(data, media_type, ocr_lang, ocr_timeout)
        return Extraction("", "unsupported", None, f"no text extraction for {media_type}")
    except subprocess.TimeoutExpired:
        return Extraction("", "failed", None, f"OCR took longer than {ocr_timeout:g} s")
    except OcrUnavailable:
        return Extraction("", "ocr-missing", None, f"OCR ({ocr_lang}) is not installed")
    except Exception as exc:  # noqa: BLE001 - a bad file is recorded, never raised
        log.info("text extraction failed for a %s file", media_type, exc_info=True)
        return Extraction("", "failed", None, f"{exc.__class__.__name__}: {exc}"[:500])
