"""Institutions (province → city → county → branch), users and their roles."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..timeutil import utcnow


class Level(str, enum.Enum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"
    BRANCH = "branch"


LEVEL_ORDER = [Level.PROVINCE, Level.CITY, Level.COUNTY, Level.BRANCH]


class Role(str, enum.Enum):
    ADMIN = "admin"
    UNION_ADMIN = "union_admin"
    LOAN_OFFICER = "loan_officer"
    POST_LOAN_OFFICER = "post_loan_officer"
    BRANCH_DIRECTOR = "branch_director"
    ARCHIVIST = "archivist"
    AUDITOR = "auditor"


class Institution(db.Model):
    """A node of the tree. ``path`` is the chain of codes from the province down
    (``/HN/HN01/HN0101/``), so a subtree is one indexed prefix match, never a walk."""

    __tablename__ = "institution"
    __scope_column__ = "id"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"), index=True)
    path: Mapped[str] = mapped_column(String(512), index=True)
    # Only on provinces: the enabled rules plugin and the union's settings overrides.
    rules_plugin: Mapped[str | None] = mapped_column(String(64))
    rules_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    parent: Mapped[Institution | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Institution]] = relationship(back_populates="parent", order_by="Institution.code")

    @property
    def depth(self) -> int:
        return self.path.strip("/").count("/")

    @property
    def province_code(self) -> str:
        return self.path.strip("/").split("/")[0]

    def province(self) -> Institution:
        if self.level == Level.PROVINCE.value:
            return self
        return self.ancestors()[0]

    def ancestors(self) -> list[Institution]:
        """From the province down to this institution's parent, in one query, and once a transaction
        (its province is asked for by every page that applies the rules)."""
        codes = ancestor_codes(self.path)
        if not codes:
            return []
        known = institutions_known(db.session)
        key = ("ancestors", self.path)
        found = known.get(key)
        if found is None or any(inst not in db.session for inst in found):   # e.g. after expunge_all()
            rows = db.session.execute(select(Institution).where(Institution.code.in_(codes))).scalars()
            found = known[key] = in_lineage_order(codes, rows)
        return list(found)

    def ancestor_at(self, level: Level) -> Institution | None:
        if self.level == level.value:
            return self
        for inst in self.ancestors():
            if inst.level == level.value:
                return inst
        return None

    def contains(self, other: Institution) -> bool:
        return other.path.startswith(self.path)

    def __repr__(self) -> str:
        return f"<Institution {self.code} {self.level}>"


# What a request learns of the institution tree (an institution's ancestors, a subtree's ids, the
# subtree's institutions: keys ("ancestors", path), ("subtree", path), ("visible", path)): pages
# ask several times a request (scope, rules, filters), and the tree changes rarely. Kept in the
# session's info, so for one transaction of one request at most (Flask-SQLAlchemy gives each
# request its own session).
# Not used while the session holds an unflushed change to an institution (the query would have
# flushed it first); forgotten when an institution is flushed, on any statement run through the
# session that is not a SELECT, and at the end of every transaction. Writes that bypass the
# session (a bare connection, bulk methods, another process) are not seen until the request ends.
_KNOWN = "xindang_institutions"


def ancestor_codes(path: str) -> list[str]:
    """The codes of the institutions above the one at ``path``, province first."""
    return path.strip("/").split("/")[:-1]


def in_lineage_order(codes: list[str], rows) -> list[Institution]:
    """Those of ``rows`` whose code is in ``codes``, in the order of ``codes``."""
    by_code = {inst.code: inst for inst in rows}
    return [by_code[c] for c in codes if c in by_code]


def _tree_changing(session) -> bool:
    return any(isinstance(obj, Institution) for obj in (*session.new, *session.dirty, *session.deleted))


def institutions_known(session) -> dict:
    """The session's memo of the tree; an empty, throwaway dict while an institution waits to
    be flushed."""
    if _tree_changing(session):
        session.info.pop(_KNOWN, None)
        return {}
    return session.info.setdefault(_KNOWN, {})


def forget_tree_if_changed(session, _context) -> None:
    """after_flush: an institution was written."""
    if _tree_changing(session):
        session.info.pop(_KNOWN, None)


def forget_tree_on_write(state) -> None:
    """do_orm_execute: a statement that may write (bulk or SQL text)."""
    if not state.is_select:
        state.session.info.pop(_KNOWN, None)


def forget_tree(session, _transaction) -> None:
    """after_transaction_end."""
    session.info.pop(_KNOWN, None)


class UserRole(db.Model):
    __tablename__ = "user_role"
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))


class User(UserMixin, db.Model):
    __tablename__ = "user"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    # Department within the institution (信贷科, 风险部, 稽核部 …); destruction needs two.
    department: Mapped[str | None] = mapped_column(String(64))
    is_active_flag: Mapped[bool] = mapped_column("is_active", default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    last_login_at: Mapped[datetime | None] = mapped_column()
    locale: Mapped[str | None] = mapped_column(String(8))
    # Bumped on password change or deactivation: invalidates every other session.
    session_token: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    institution: Mapped[Institution] = relationship()
    role_rows: Mapped[list[UserRole]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def roles(self) -> set[str]:
        return {r.role for r in self.role_rows}

    def has_role(self, *roles: Role | str) -> bool:
        wanted = {r.value if isinstance(r, Role) else r for r in roles}
        return bool(self.roles & wanted)

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.is_active_flag

    def get_id(self) -> str:  # Flask-Login: a changed token logs out old sessions
        return f"{self.id}:{self.session_token}"

    def __repr__(self) -> str:
        return f"<User {self.username}>"
