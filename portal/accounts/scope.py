"""Who may do what, and on which institutions: the one place every view, list and download asks.

Two questions, always both:
- *role*: does one of the user's roles carry the permission (``PERMISSIONS`` below)?
- *scope*: is the object's institution inside the user's subtree? A loan belongs to its branch,
  a borrower to its institution; other models name their institution column in
  ``__scope_column__``. Objects outside the subtree are reported as not found (404), so their
  existence is not revealed.

``admin`` is the deployment's operator: it manages institutions and users everywhere and is the
only role not confined to a subtree.
"""
from __future__ import annotations

from functools import wraps
from typing import Any, Callable, TypeVar

from flask import abort
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import ColumnElement, Select, or_, select, true

from ..routing import MAX_ID
from ..errors import PermissionDenied, not_found
from ..extensions import db
from .models import Institution, Role, User, ancestor_codes, in_lineage_order, institutions_known

F = TypeVar("F", bound=Callable[..., Any])

ALL_ROLES = frozenset(r.value for r in Role)
LENDING_STAFF = frozenset({Role.LOAN_OFFICER.value, Role.POST_LOAN_OFFICER.value, Role.BRANCH_DIRECTOR.value})

PERMISSIONS: dict[str, frozenset[str]] = {
    "portal.use": ALL_ROLES,
    "loan.view": ALL_ROLES,
    "borrower.view": ALL_ROLES,
    # Full ID numbers: only the people who deal with the borrower in person.
    "borrower.view_id_number": LENDING_STAFF,
    "loan.import": frozenset({Role.ADMIN.value, Role.UNION_ADMIN.value, Role.BRANCH_DIRECTOR.value}),
    "rules.view": ALL_ROLES,
    "rules.manage": frozenset({Role.UNION_ADMIN.value, Role.ADMIN.value}),
    "org.view": ALL_ROLES,
    "org.manage": frozenset({Role.ADMIN.value}),
    "users.manage": frozenset({Role.ADMIN.value}),
    "audit.view_log": frozenset({Role.ADMIN.value, Role.AUDITOR.value, Role.UNION_ADMIN.value}),
    # --- archive permissions ---
    # The credit file's list of documents: everyone but the operator. Content is read directly by
    # archivists, directors and auditors; those who collect documents read them until they are
    # archived, and borrow them after (lending). Auditors change nothing.
    "archive.view": ALL_ROLES - {Role.ADMIN.value},
    "archive.read": frozenset({Role.ARCHIVIST.value, Role.BRANCH_DIRECTOR.value, Role.AUDITOR.value}),
    "archive.upload": LENDING_STAFF | {Role.ARCHIVIST.value},
    "archive.manage": frozenset({Role.ARCHIVIST.value}),
    "lending.request": LENDING_STAFF | {Role.ARCHIVIST.value},
    "lending.approve": frozenset({Role.BRANCH_DIRECTOR.value, Role.ARCHIVIST.value}),  # never the requester
    "lending.issue": frozenset({Role.ARCHIVIST.value}),
    "lending.register": frozenset({Role.ARCHIVIST.value, Role.BRANCH_DIRECTOR.value, Role.AUDITOR.value}),
    "transfer.view": frozenset({Role.ARCHIVIST.value, Role.BRANCH_DIRECTOR.value, Role.AUDITOR.value}),
    "transfer.manage": frozenset({Role.ARCHIVIST.value}),
    "hold.view": frozenset({Role.ARCHIVIST.value, Role.BRANCH_DIRECTOR.value, Role.AUDITOR.value}),
    "hold.manage": frozenset({Role.ARCHIVIST.value, Role.BRANCH_DIRECTOR.value}),
    # Supervisors must see the lists they confirm, so every staff role reads them.
    "destruction.view": LENDING_STAFF | {Role.ARCHIVIST.value, Role.AUDITOR.value},
    "destruction.propose": frozenset({Role.ARCHIVIST.value}),
    "destruction.approve": frozenset({Role.BRANCH_DIRECTOR.value}),  # never the proposer
    # Supervisors (监销): staff of two departments, never the proposer.
    "destruction.confirm": LENDING_STAFF | {Role.ARCHIVIST.value},
    "destruction.execute": frozenset({Role.ARCHIVIST.value}),
    # --- post-loan permissions ---
    # Who signs off inspections and approves write-offs is the union's rules plugin's answer
    # (responsibility_roles), checked in the services; these are the coarse gates.
    "postloan.view": ALL_ROLES,
    "postloan.work": LENDING_STAFF,
    "postloan.classify": frozenset({Role.BRANCH_DIRECTOR.value, Role.POST_LOAN_OFFICER.value}),
    "postloan.decide_warning": frozenset({Role.BRANCH_DIRECTOR.value, Role.POST_LOAN_OFFICER.value}),
    "postloan.handover": frozenset({Role.BRANCH_DIRECTOR.value}),
    "postloan.close": LENDING_STAFF,
    # --- audit workspace permissions ---
    # Read-only views of the audit workspace (portal/auditing); what auditors may change is
    # only their own archive inspection records ("audit.inspect", owner-checked in the service)
    # and asking for a fixity check ("audit.fixity_verify", which records a run).
    "audit.dashboard": ALL_ROLES,
    "audit.completeness": ALL_ROLES - {Role.ADMIN.value},
    "audit.fixity": frozenset({Role.AUDITOR.value, Role.ARCHIVIST.value, Role.BRANCH_DIRECTOR.value,
                               Role.UNION_ADMIN.value}),
    "audit.fixity_verify": frozenset({Role.AUDITOR.value, Role.ARCHIVIST.value}),
    "audit.inspections": frozenset({Role.AUDITOR.value, Role.ARCHIVIST.value, Role.BRANCH_DIRECTOR.value,
                                    Role.UNION_ADMIN.value}),
    # County auditors inspect their branches; a branch's director or archivist does its own check.
    "audit.inspect": frozenset({Role.AUDITOR.value, Role.ARCHIVIST.value, Role.BRANCH_DIRECTOR.value}),
    "audit.reports": frozenset({Role.AUDITOR.value, Role.ARCHIVIST.value, Role.BRANCH_DIRECTOR.value,
                                Role.UNION_ADMIN.value}),
    # --- search permissions ---
    # Search shows what the credit archive shows (its list of documents); text matches and
    # snippets only where the user may read the content (archive.read, or lending).
    "search.use": ALL_ROLES - {Role.ADMIN.value},
    "search.manage": frozenset({Role.ARCHIVIST.value}),
}


def can(user: User | Any, permission: str) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    allowed = PERMISSIONS.get(permission)
    if allowed is None:
        raise KeyError(f"unknown permission {permission!r}")
    return bool(user.roles & allowed)


def require(permission: str) -> Callable[[F], F]:
    """View decorator: login, then the permission; 403 otherwise."""
    def decorator(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any):
            if not can(current_user, permission):
                abort(403)
            return view(*args, **kwargs)
        return wrapped  # type: ignore[return-value]
    return decorator


def check(user: User, permission: str) -> None:
    """Service-side guard: raise PermissionDenied (403) if the role does not allow it."""
    if not can(user, permission):
        raise PermissionDenied(_("Your role does not allow this action."))


def is_global(user: User) -> bool:
    return user.has_role(Role.ADMIN)


def subtree_ids(user: User) -> Select:
    """A subquery of the ids of every institution in the user's subtree."""
    return select(Institution.id).where(Institution.path.startswith(user.institution.path, autoescape=True))


def in_scope(column: ColumnElement, user: User) -> ColumnElement[bool]:
    """SQL condition: ``column`` (an institution id) lies in the user's subtree."""
    if is_global(user):
        return true()
    # The subtree's ids as a list, not as a subquery: SQLite plans ``IN (SELECT …)`` as a scan of
    # the whole table (through the index of a GROUP BY column), 80 ms a query at 100,000 loans
    # for a branch of 5,000; with a list it uses the column's own index (bench/load.md).
    known = institutions_known(db.session)
    key = ("subtree", user.institution.path)
    if key not in known:
        visible = known.get(("visible", user.institution.path))   # visible_institutions() read them
        known[key] = ([inst.id for inst in visible] if visible is not None
                      else db.session.execute(subtree_ids(user)).scalars().all())
    return column.in_(known[key])


def scope_column(model: type) -> ColumnElement:
    column = getattr(model, "__scope_column__", None)
    if column is None:
        raise TypeError(f"{model.__name__} declares no __scope_column__")
    return getattr(model, column)


def scoped(stmt: Select, model: type, user: User) -> Select:
    """Add the user's scope to a select over ``model``."""
    return stmt.where(in_scope(scope_column(model), user))


def institution_visible(user: User, institution: Institution) -> bool:
    return is_global(user) or institution.path.startswith(user.institution.path)


def get_scoped_or_404(model: type, ident: Any, user: User, options: tuple = ()):
    """The object if it exists and lies in the user's subtree, else 404 (never 403); ``options``:
    loader options (what the page shows of its relations, in the same statement)."""
    if isinstance(ident, int) and not 0 < ident <= MAX_ID:  # from a form field; no record has it
        raise not_found()
    stmt = scoped(select(model).where(model.id == ident).options(*options), model, user)
    obj = db.session.execute(stmt).scalar_one_or_none()
    if obj is None:
        raise not_found()
    return obj


def visible_institutions(user: User, levels: tuple[str, ...] | None = None) -> list[Institution]:
    """The institutions of the user's subtree (every one for a global user), by path; ``levels``
    keeps only those levels. Once a transaction, with the institution's ancestors in the same
    statement (the pages that list institutions also name the province's rules or the lineage)."""
    if is_global(user):
        stmt = select(Institution).order_by(Institution.path)
        if levels:
            stmt = stmt.where(Institution.level.in_(levels))
        return list(db.session.execute(stmt).scalars())
    own = user.institution
    known = institutions_known(db.session)
    key = ("visible", own.path)
    found = known.get(key)
    if found is None or any(inst not in db.session for inst in found):   # e.g. after expunge_all()
        codes = ancestor_codes(own.path)
        rows = list(db.session.execute(
            select(Institution).where(or_(Institution.path.startswith(own.path, autoescape=True),
                                          Institution.code.in_(codes)))
            .order_by(Institution.path)).scalars())
        found = known[key] = [inst for inst in rows if inst.path.startswith(own.path)]
        known[("ancestors", own.path)] = in_lineage_order(codes, rows)   # as Institution.ancestors()
    return [inst for inst in found if not levels or inst.level in levels]
