"""What a file really is, from its bytes, and a safe name to keep for it.

The archive accepts PDF, JPEG, PNG, TIFF, DOCX and XLSX. Everything else is refused with a
message that says what was received ("a GIF image", "an old Word document (.doc)", "plain
text", …), and so is a file whose name claims one accepted type while its bytes are another.
Nothing here touches the database or the store; functions take a seekable binary stream and
leave it at the position they found it.
"""
from __future__ import annotations

import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from flask_babel import lazy_gettext as _l

HEAD_BYTES = 4096


@dataclass(frozen=True)
class FileKind:
    code: str
    media_type: str
    extension: str
    description: object  # lazy string: what the user is told the file is


ACCEPTED: dict[str, FileKind] = {k.code: k for k in (
    FileKind("pdf", "application/pdf", ".pdf", _l("a PDF document")),
    FileKind("jpeg", "image/jpeg", ".jpg", _l("a JPEG image")),
    FileKind("png", "image/png", ".png", _l("a PNG image")),
    FileKind("tiff", "image/tiff", ".tif", _l("a TIFF image")),
    FileKind("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx",
             _l("a Word document (.docx)")),
    FileKind("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx",
             _l("an Excel workbook (.xlsx)")),
)}

# The name's extension → the kind it claims to be.
CLAIMED = {".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png", ".tif": "tiff",
           ".tiff": "tiff", ".docx": "docx", ".xlsx": "xlsx"}

# Refused kinds recognised by their first bytes, to tell the user what they sent.
_REFUSED_MAGIC: list[tuple[bytes, object]] = [
    (b"GIF87a", _l("a GIF image")), (b"GIF89a", _l("a GIF image")),
    (b"BM", _l("a BMP image")),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", _l("an old Office document (.doc or .xls)")),
    (b"Rar!", _l("a RAR archive")), (b"7z\xbc\xaf\x27\x1c", _l("a 7-Zip archive")),
    (b"\x1f\x8b", _l("a gzip archive")), (b"MZ", _l("a Windows program")),
    (b"\x7fELF", _l("a Linux program")), (b"{\\rtf", _l("an RTF document")),
    (b"\x00\x00\x00\x0cjP  ", _l("a JPEG 2000 image")),
]


_MARKUP = re.compile(rb"(?:\xef\xbb\xbf)?\s*<(?:!doctype|html|head|body|script|svg|\?xml)", re.IGNORECASE)


@dataclass(frozen=True)
class Sniffed:
    kind: FileKind | None          # None: refused
    received: str                   # what the bytes are, in words

    @property
    def accepted(self) -> bool:
        return self.kind is not None


def _describe_other(head: bytes) -> str:
    if not head:
        return str(_l("an empty file"))
    for magic, text in _REFUSED_MAGIC:
        if head.startswith(magic):
            return str(text)
    if head[4:8] == b"ftyp":
        return str(_l("a video or HEIC image"))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return str(_l("a WebP image"))
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html")):
        return str(_l("an HTML page"))
    if stripped.startswith(b"<svg") or (stripped.startswith(b"<?xml") and b"<svg" in stripped):
        return str(_l("an SVG image"))
    if stripped.startswith(b"<?xml"):
        return str(_l("an XML file"))
    try:
        head.decode("utf-8")
        is_text = not any(b < 9 or 13 < b < 32 for b in head)
    except UnicodeDecodeError:
        is_text = False
    if is_text:
        return str(_l("plain text"))
    preview = " ".join(f"{b:02X}" for b in head[:8])
    return str(_l("unrecognised binary data (starting %(bytes)s)", bytes=preview))


def _zip_kind(fileobj: BinaryIO) -> tuple[str | None, str]:
    try:
        with zipfile.ZipFile(fileobj) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None, str(_l("a damaged ZIP archive"))
    if "word/document.xml" in names:
        return "docx", ""
    if "xl/workbook.xml" in names:
        return "xlsx", ""
    if "ppt/presentation.xml" in names:
        return None, str(_l("a PowerPoint presentation (.pptx)"))
    if "OFD.xml" in names:
        return None, str(_l("an OFD document"))
    return None, str(_l("a ZIP archive"))


def sniff(fileobj: BinaryIO) -> Sniffed:
    """Identify the file by its bytes."""
    start = fileobj.tell()
    try:
        head = fileobj.read(HEAD_BYTES)
        # Readers find "%PDF-" anywhere in the first kilobyte; markup that merely contains it (a
        # web page saved under a .pdf name, an HTML/PDF polyglot) is still markup.
        if b"%PDF-" in head[:1024] and not _MARKUP.match(head):
            return Sniffed(ACCEPTED["pdf"], str(ACCEPTED["pdf"].description))
        if head.startswith(b"\xff\xd8\xff"):
            return Sniffed(ACCEPTED["jpeg"], str(ACCEPTED["jpeg"].description))
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return Sniffed(ACCEPTED["png"], str(ACCEPTED["png"].description))
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return Sniffed(ACCEPTED["tiff"], str(ACCEPTED["tiff"].description))
        if head.startswith(b"PK\x03\x04"):
            fileobj.seek(start)
            code, received = _zip_kind(fileobj)
            if code:
                return Sniffed(ACCEPTED[code], str(ACCEPTED[code].description))
            return Sniffed(None, received)
        return Sniffed(None, _describe_other(head))
    finally:
        fileobj.seek(start)


def claimed_kind(filename: str) -> str | None:
    """The accepted kind the file's name claims by its extension, if any."""
    return CLAIMED.get(os.path.splitext(filename or "")[1].lower())


_UNSAFE = re.compile(r"[^\w\u3000-\u303f\uff00-\uffef .()\[\]（）【】《》+,，、-]+")
MAX_NAME = 120


def sanitise_filename(filename: str | None, kind: FileKind | None = None) -> str:
    """A name safe to show and to send in a header: no directories, no control or shell
    characters, at most 120 characters, and the extension of what the file really is."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    stem, ext = os.path.splitext(name)
    if kind is not None and CLAIMED.get(ext.lower()) == kind.code:
        ext = ext.lower()
    elif kind is not None:
        stem, ext = name, kind.extension
    stem = _UNSAFE.sub("_", stem)
    stem = re.sub(r"[_\s]{2,}", "_", stem).strip(" ._-") or "document"
    ext = _UNSAFE.sub("", ext)[:10]
    return stem[: MAX_NAME - len(ext)] + ext


def count_pages(fileobj: BinaryIO, kind: FileKind) -> int | None:
    """Pages of a PDF or frames of a TIFF; 1 for other images; None when unknown."""
    start = fileobj.tell()
    try:
        if kind.code == "pdf":
            from pypdf import PdfReader
            return len(PdfReader(fileobj, strict=False).pages)
        if kind.code in ("jpeg", "png"):
            return 1
        if kind.code == "tiff":
            from PIL import Image
            with Image.open(fileobj) as img:
                return int(getattr(img, "n_frames", 1))
    except Exception:  # noqa: BLE001 - a file we cannot paginate is still kept
        return None
    finally:
        fileobj.seek(start)
    return None
