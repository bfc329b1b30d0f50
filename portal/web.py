"""What every area's views share, each written once with one rule: reading an id, a list of
ids, a page number or a date from the request; "commit, say so and go on" after a form; the
check that a form's ``next`` is a page of this site; and file responses (PDF, spreadsheets,
stored files) with a Content-Disposition that carries Chinese file names.

Infrastructure: imports flask and the portal's own infrastructure (``routing``, ``extensions``),
never accounts or a domain package. The 404 a view or a service raises is
``errors.not_found()`` (services raise it too, and do not import the web layer).

The rules, so a view need not think about them:

- An id (``id_arg``, ``id_list``) is ``routing.parse_id``: ASCII digits naming a
  number a primary key can hold, else None (a list leaves such values out).
- A page number (``page_arg``) is ASCII digits, else 1, and at most ``MAX_ID``; a list that
  counts its pages shows its last for a number beyond them.
- A date (``date_arg``) is ``YYYY-MM-DD`` between 1900 and 2999; anything else (malformed, or a
  year no report spans, on which day arithmetic and time-zone shifts would overflow) is
  ignored as if absent, as filters ignore other nonsense.
- A redirect target (``safe_target``) is a path on this site: it starts with one "/", has no
  scheme or host, no backslash and no control character. Browsers read "\\" as "/" and drop
  tabs and line breaks ("/\\t/evil.example" is "//evil.example", another site), and a line
  break in a Location header is a 500 after the form's change was saved.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import date
from urllib.parse import quote, urlsplit

from flask import Response, flash, redirect, request

from .extensions import db
from .routing import MAX_ID, parse_id

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2999, 12, 31)

# What the browser shows itself (its PDF viewer, two image types) instead of downloading;
# anything else (HTML, office files) is downloaded, never shown as a page of the portal.
INLINE_TYPES = frozenset({"application/pdf", "image/jpeg", "image/png"})


# --- reading the request ----------------------------------------------------------------------

def id_arg(name: str) -> int | None:
    """The id the request's parameter ``name`` names (query string, else form field), or None:
    absent, or no record can have it."""
    return parse_id(request.values.get(name))


def id_list(name: str) -> list[int]:
    """The ids of the form's repeated field ``name``, leaving out values no record can have."""
    return [i for i in map(parse_id, request.form.getlist(name)) if i is not None]


def page_arg(name: str) -> int:
    """The page the query parameter ``name`` asks for: 1 unless it is ASCII digits; at most
    ``MAX_ID`` (the caller clamps to its last page)."""
    raw = (request.args.get(name) or "").strip()
    if not (raw.isascii() and raw.isdigit()):
        return 1
    if len(raw) > len(str(MAX_ID)):
        return MAX_ID
    return min(max(int(raw), 1), MAX_ID)


def date_arg(name: str, default: date | None = None) -> date | None:
    """The date the query parameter ``name`` gives (``YYYY-MM-DD``, 1900 to 2999), or
    ``default`` when it is absent or not such a date."""
    raw = (request.args.get(name) or "").strip()
    try:
        day = date.fromisoformat(raw) if raw else None
    except ValueError:
        return default
    return day if day is not None and EARLIEST_DATE <= day <= LATEST_DATE else default


# --- after a form -----------------------------------------------------------------------------

def safe_target(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (the module docstring has the rule)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(unicodedata.category(ch) == "Cc" for ch in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def back(default: str, *, code: int = 302) -> Response:
    """Redirect to the form's ``next`` when it is a page of this site, else to ``default``."""
    return redirect(safe_target(request.form.get("next")) or default, code=code)


def done(message: str, default: str, *, code: int = 302) -> Response:
    """After a form's change: commit, flash ``message`` as a success, and go back (``back``).

    ``code``: 302, or 303 where an area has always answered its forms so (the archive, the audit
    workspace); both make the browser GET the next page."""
    db.session.commit()
    flash(message, "success")
    return back(default, code=code)


# --- files ------------------------------------------------------------------------------------

def content_disposition(filename: str, inline: bool) -> str:
    """``inline``/``attachment`` with an ASCII fallback and the UTF-8 name (RFC 6266)."""
    kind = "inline" if inline else "attachment"
    ascii_name = filename.encode("ascii", "ignore").decode().replace('"', "").strip() or "document"
    if "." not in ascii_name and "." in filename:
        ascii_name += "." + filename.rsplit(".", 1)[1].encode("ascii", "ignore").decode()
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def file_response(content: bytes | Iterable[bytes], filename: str, mimetype: str, *,
                  inline: bool | None = None) -> Response:
    """A file for the browser: shown in it when it is of ``INLINE_TYPES`` (unless ``inline``
    says otherwise), downloaded as ``filename`` otherwise. ``content``: the bytes, or chunks
    (wrap a generator that reads the database or the store in ``stream_with_context``)."""
    response = Response(content, mimetype=mimetype)
    shown = mimetype in INLINE_TYPES if inline is None else inline
    response.headers["Content-Disposition"] = content_disposition(filename, inline=shown)
    return response


def pdf_response(data: bytes, filename: str) -> Response:
    """A PDF the browser shows, saved as ``filename`` (Chinese names kept)."""
    return file_response(data, filename, "application/pdf")
