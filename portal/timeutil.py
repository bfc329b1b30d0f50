"""Time helpers: naive UTC datetimes in the database, China Standard Time on the page."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

CST = timezone(timedelta(hours=8), "CST")


def utcnow() -> datetime:
    """Naive UTC, the form stored in every datetime column (same on SQLite and PostgreSQL)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def local_today() -> date:
    """Today's date in China, the date every due date and deadline is counted in."""
    return datetime.now(CST).date()


def to_local(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).astimezone(CST)
