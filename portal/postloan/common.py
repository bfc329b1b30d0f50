"""Small things every post-loan module uses: who the rules name for a duty, the open-loan
filter, and the week a due list covers."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Iterable

from flask_babel import gettext as _
from sqlalchemy import select

from ..accounts.models import Institution, User, UserRole
from ..errors import InvalidInput, PermissionDenied, WrongState
from ..extensions import db
from ..labels import label
from ..loans.models import OPEN_LOAN_STATUSES, RISK_ORDER, Loan
from ..rules.types import RoleAt

OFFICER_ROLES = ("loan_officer", "post_loan_officer")


def named_by(roles: Iterable[RoleAt], user: User, *, ignore_level: bool = False) -> bool:
    """Whether the user holds one of the roles the rules name, at the level named."""
    return any(user.has_role(r.role) and (ignore_level or user.institution.level == r.level) for r in roles)


def require_named(roles: tuple[RoleAt, ...], user: User, duty: str) -> None:
    if not named_by(roles, user):
        raise PermissionDenied(_("Under your union's rules, %(duty)s is done by: %(who)s.",
                                 duty=duty, who=describe_roles(roles)))


def describe_roles(roles: Iterable[RoleAt]) -> str:
    return "、".join(f"{label(r.role, 'role')} ({label(r.level, 'level')})" for r in roles) or "—"


def require_open(loan: Loan) -> None:
    if loan.status not in OPEN_LOAN_STATUSES:
        raise WrongState(_("Loan %(no)s is closed.", no=loan.contract_no))


def week_end(as_of: date) -> date:
    """The Sunday of the week containing ``as_of``: "due this week" runs until then."""
    return as_of + timedelta(days=6 - as_of.weekday())


def risk_index(code: str) -> int:
    return RISK_ORDER.index(code)


def parse_date(raw: str | None, field: str, *, required: bool = True) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        if required:
            raise InvalidInput(_("%(field)s is required.", field=field))
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(_("%(field)s: %(value)s is not a date (YYYY-MM-DD).", field=field, value=raw[:20])) from None


def parse_yuan(raw: str | None, field: str, *, required: bool = False) -> int | None:
    """A yuan amount as typed ("1,234.5") to integer fen."""
    text = (raw or "").strip().replace(",", "").replace(",", "")
    if not text:
        if required:
            raise InvalidInput(_("%(field)s is required.", field=field))
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(_("%(field)s: %(value)s is not an amount.", field=field, value=text[:20])) from None
    if value < 0 or value.as_tuple().exponent < -2 or value > Decimal("1e12"):
        raise InvalidInput(_("%(field)s: %(value)s is not an amount in yuan with at most two decimals.",
                             field=field, value=text[:20]))
    return int(value * 100)


def officers_in(institution_path: str) -> list[User]:
    """Active users with an officer role whose institution lies in this subtree."""
    return list(db.session.execute(
        select(User).join(UserRole).join(Institution, User.institution_id == Institution.id)
        .where(UserRole.role.in_(OFFICER_ROLES), User.is_active_flag.is_(True),
               Institution.path.startswith(institution_path, autoescape=True))
        .order_by(User.username)).scalars().unique())
