"""The hostile file corpus, built in memory by the tests (no binary fixtures in the repository).

Each builder returns bytes; ``corpus(limit_mb)`` returns the named cases the hostile-file tests
push through every way a file enters the portal. The DOCX bomb is built without ever holding its
inflated content: a steady-state DEFLATE block of one repeated byte is repeated, and its CRC is
combined arithmetically, so a 3 GB part costs a few megabytes and a fraction of a second.
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

from tests.helpers.files import pdf_bytes


# --- images -----------------------------------------------------------------------------------

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, rows: int | None = None) -> bytes:
    """An RGB PNG declaring ``width`` × ``height``; only ``rows`` rows of pixel data (default all)."""
    rows = height if rows is None else rows
    raw = (b"\x00" + b"\x00" * (3 * width)) * rows
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(raw, 9)) + _png_chunk(b"IEND", b""))


def tiny_png() -> bytes:
    return png(2, 2)


def png_bomb() -> bytes:
    """A PNG header claiming 100000 × 100000 pixels (30 GB decoded) with four rows of data: Pillow's
    decompression-bomb case."""
    return png(100_000, 100_000, rows=4)


# --- PDFs -------------------------------------------------------------------------------------

def oversize_pdf(size: int) -> bytes:
    """A valid PDF padded (after %%EOF, where readers ignore it) to ``size`` bytes."""
    body = pdf_bytes("oversize")
    return body + b"\n%" + b"0" * max(0, size - len(body) - 2)


def html_pdf() -> bytes:
    """A web page under a .pdf name (what a browser's "save as" of a portal gives)."""
    return (b"<!DOCTYPE html>\n<html><head><title>\xe5\x80\x9f\xe6\xac\xbe\xe5\x90\x88\xe5\x90\x8c</title>"
            b"<script>alert(document.cookie)</script></head><body onload=\"alert(1)\">%PDF-1.7</body></html>\n")


def truncated_pdf() -> bytes:
    """The first half of a valid PDF: header present, xref and trailer missing."""
    body = pdf_bytes("truncated " * 40)
    return body[: len(body) // 2]


# --- the DOCX bomb ----------------------------------------------------------------------------

_CRC_POLY = 0xEDB88320


def _gf2_times(mat: list[int], vec: int) -> int:
    total, i = 0, 0
    while vec:
        if vec & 1:
            total ^= mat[i]
        vec >>= 1
        i += 1
    return total


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """zlib's crc32_combine: the CRC of A+B from CRC(A), CRC(B) and len(B)."""
    if len2 <= 0:
        return crc1
    odd = [_CRC_POLY] + [1 << n for n in range(31)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def _bomb_stream(prefix: bytes, filler: bytes, repeats: int, suffix: bytes) -> tuple[bytes, int, int]:
    """(raw DEFLATE data, CRC-32, inflated size) of prefix + filler × repeats + suffix."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(prefix) + comp.compress(filler) + comp.flush(zlib.Z_SYNC_FLUSH)
    steady = comp.compress(filler) + comp.flush(zlib.Z_SYNC_FLUSH)
    again = comp.compress(filler) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert steady == again, "the DEFLATE output of the filler has no steady state"
    tail = comp.compress(suffix) + comp.flush(zlib.Z_FINISH)
    data = first + steady * (repeats - 1) + tail
    crc_filler = zlib.crc32(filler)
    crc = zlib.crc32(prefix)
    block_crc, block_len = crc_filler, len(filler)  # CRC of filler × 2^k, by doubling
    n = repeats
    while n:
        if n & 1:
            crc = crc32_combine(crc, block_crc, block_len)
        block_crc = crc32_combine(block_crc, block_crc, block_len)
        block_len *= 2
        n >>= 1
    crc = crc32_combine(crc, zlib.crc32(suffix), len(suffix))
    return data, crc, len(prefix) + len(filler) * repeats + len(suffix)


def _zip(entries: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A ZIP of (name, data, method, crc, inflated size) written by hand (sizes < 4 GiB)."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, method, crc, size in entries:
        raw_name = name.encode()
        offset = out.tell()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size,
                              len(raw_name), 0) + raw_name + data)
        central.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(data),
                                  size, len(raw_name), 0, 0, 0, 0, 0, offset) + raw_name)
    start = out.tell()
    directory = central.getvalue()
    out.write(directory)
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), start, 0))
    return out.getvalue()


def _stored(name: str, text: str) -> tuple[str, bytes, int, int, int]:
    data = text.encode()
    return (name, data, 0, zlib.crc32(data), len(data))


DOCX_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
DOCX_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>')
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

BOMB_GB = 3


def docx_bomb(gigabytes: int = BOMB_GB) -> bytes:
    """A real DOCX package whose word/document.xml is one paragraph of ``gigabytes`` GB of text:
    a ~3 MB file (DEFLATE's ratio tops out near 1:1000). Its sizes and CRC are honest, so only a
    reader that bounds what it inflates is safe."""
    chunk = 16 << 20
    prefix = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>'
    suffix = "</w:t></w:r></w:p></w:body></w:document>"
    data, crc, size = _bomb_stream(prefix.encode(), b"A" * chunk, (gigabytes << 30) // chunk, suffix.encode())
    return _zip([_stored("[Content_Types].xml", DOCX_CONTENT_TYPES), _stored("_rels/.rels", DOCX_RELS),
                 ("word/document.xml", data, 8, crc, size)])


def xlsx_bomb(gigabytes: int = 1) -> bytes:
    """An XLSX whose shared-strings part inflates to ``gigabytes`` GB (openpyxl reads that part whole)."""
    chunk = 16 << 20
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    prefix = f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{main}" count="1" uniqueCount="1"><si><t>'
    suffix = "</t></si></sst>"
    data, crc, size = _bomb_stream(prefix.encode(), b"A" * chunk, (gigabytes << 30) // chunk, suffix.encode())
    types = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
             '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
             '<Default Extension="xml" ContentType="application/xml"/>'
             '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
             '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
             '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
             '</Types>')
    rels = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>')
    workbook = (f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" '
                'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
                '<sheets><sheet name="贷款" sheetId="1" r:id="rId1"/></sheets></workbook>')
    wb_rels = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
               '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
               '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
               '</Relationships>')
    sheet = (f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{main}"><sheetData>'
             '<row r="1"><c r="A1" t="s"><v>0</v></c></row></sheetData></worksheet>')
    return _zip([_stored("[Content_Types].xml", types), _stored("_rels/.rels", rels),
                 _stored("xl/workbook.xml", workbook), _stored("xl/_rels/workbook.xml.rels", wb_rels),
                 _stored("xl/worksheets/sheet1.xml", sheet), ("xl/sharedStrings.xml", data, 8, crc, size)])


# --- names ------------------------------------------------------------------------------------

RLO = "\u202e"
MIXED_NAME = f"借款合同عقد القرض😀{RLO}fdp.exe"       # shows as "…exe.pdf" where bidi is honoured
LONG_NAME = "借款合同" * 300 + ".pdf"                    # 1,200 characters
TRAVERSAL_NAMES = ["../../../../etc/passwd.pdf", "..\\..\\windows\\win.ini.pdf", "/etc/shadow.pdf", "../"]
NUL_NAME = "合同\x00.exe.pdf"


@dataclass(frozen=True)
class HostileFile:
    name: str          # the case, for messages
    filename: str
    content: bytes
    stored: bool       # whether the archive should keep it (safely) rather than refuse it


def archive_corpus(limit_bytes: int) -> list[HostileFile]:
    """Every hostile file for the archive (upload and ingest), with what should happen to it."""
    good = pdf_bytes
    return [
        HostileFile("oversize", "超大扫描件.pdf", oversize_pdf(limit_bytes + 4096), False),
        HostileFile("html as pdf", "借款合同.pdf", html_pdf(), False),
        HostileFile("truncated pdf", "截断.pdf", truncated_pdf(), True),
        HostileFile("docx bomb", "调查报告.docx", docx_bomb(), True),
        HostileFile("png bomb", "照片.png", png_bomb(), True),
        *[HostileFile(f"traversal {n!r}", n, good(f"traversal {n}"), True) for n in TRAVERSAL_NAMES],
        HostileFile("nul byte", NUL_NAME, good("nul"), True),
        HostileFile("long name", LONG_NAME, good("long"), True),
        HostileFile("mixed scripts and RTL override", MIXED_NAME, good("mixed"), True),
    ]
