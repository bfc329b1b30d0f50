"""Display names of the search package's codes (what text extraction found, and how)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

SEARCH_LABELS = {
    "text_status": {"ok": _l("Extracted"), "failed": _l("Extraction failed"),
                    "unsupported": _l("No text in this kind of file"),
                    "ocr-missing": _l("Scan not read: OCR is not installed")},
    "text_method": {"pdf-text": _l("PDF text"), "pdf-ocr": _l("PDF scan, OCR"),
                    "pdf-text+ocr": _l("PDF text and OCR of scanned pages"), "docx": _l("Word document"),
                    "xlsx": _l("Excel workbook"), "ocr:chi_sim": _l("OCR (Simplified Chinese)")},
}
