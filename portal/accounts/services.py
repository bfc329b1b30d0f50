"""Institutions, users, sign-in and the union's rules settings: the operations that change them.

Services take the acting user, flush, and write one audit event; the caller commits.
"""
from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from ..audit_trail import record_event
from ..errors import InvalidInput
from ..extensions import db
from ..timeutil import utcnow
from .models import LEVEL_ORDER, Institution, Level, Role, User, UserRole

_hasher = PasswordHasher()
# Tests create many users; a cheap hash keeps them fast. Never used outside TESTING.
_test_hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)


def _get_hasher() -> PasswordHasher:
    return _test_hasher if current_app and current_app.config.get("TESTING") else _hasher
CODE_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    return _get_hasher().hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _get_hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def get_institution(code: str) -> Institution | None:
    return db.session.execute(select(Institution).where(Institution.code == code)).scalar_one_or_none()


def get_user(username: str) -> User | None:
    """The user of this user name, compared without case (as at sign-in)."""
    return db.session.execute(select(User).where(func.lower(User.username) == (username or "").strip().lower())
                              ).scalar_one_or_none()


def create_institution(actor: User | None, code: str, name: str, level: str, parent_code: str | None = None) -> Institution:
    """Add an institution under its parent. A provincial union starts on the baseline rules;
    ``portal.rules.services.set_union_plugin`` enables its plugin."""
    code, name = (code or "").strip(), (name or "").strip()
    if not CODE_RE.match(code):
        raise InvalidInput(_("Institution code %(code)s: use 1–32 letters, digits or underscores.", code=code))
    if not name:
        raise InvalidInput(_("The institution needs a name."))
    try:
        level_enum = Level(level)
    except ValueError:
        raise InvalidInput(_("Unknown level %(level)s; use province, city, county or branch.", level=level)) from None
    if get_institution(code) is not None:
        raise InvalidInput(_("Institution code %(code)s already exists.", code=code))
    parent = None
    if level_enum is Level.PROVINCE:
        if parent_code:
            raise InvalidInput(_("A provincial union has no parent."))
    else:
        if not parent_code:
            raise InvalidInput(_("A %(level)s needs a parent institution.", level=level))
        parent = get_institution(parent_code)
        if parent is None:
            raise InvalidInput(_("Parent institution %(code)s does not exist.", code=parent_code))
        if LEVEL_ORDER.index(Level(parent.level)) >= LEVEL_ORDER.index(level_enum):
            raise InvalidInput(_("A %(level)s cannot sit under a %(parent)s.", level=level, parent=parent.level))
    inst = Institution(code=code, name=name, level=level_enum.value, parent=parent,
                       path=(parent.path if parent else "/") + code + "/",
                       rules_plugin=None, rules_settings={})
    db.session.add(inst)
    db.session.flush()
    record_event(actor, "institution.create", "institution", inst.code,
                 {"name": name, "level": level, "parent": parent_code},
                 institution_id=inst.id)
    return inst


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise InvalidInput(_("The password must have at least %(n)d characters.", n=MIN_PASSWORD))


def create_user(actor: User | None, username: str, password: str, institution_code: str,
                roles: Iterable[str], display_name: str | None = None, department: str | None = None,
                *, password_hash: str | None = None) -> User:
    """Add a user. ``password_hash`` (the caller's own ``hash_password(password)``) lets a caller
    creating many users with one password hash it once; it is trusted, not re-verified, since
    verifying costs as much as hashing."""
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        raise InvalidInput(_("User name %(name)s: use 2–64 letters, digits, dots, dashes or underscores.", name=username))
    if db.session.execute(select(User).where(func.lower(User.username) == username.lower())).first():
        raise InvalidInput(_("User name %(name)s is taken.", name=username))
    institution = get_institution(institution_code)
    if institution is None:
        raise InvalidInput(_("Institution %(code)s does not exist.", code=institution_code))
    role_values = sorted(set(roles))
    if not role_values:
        raise InvalidInput(_("A user needs at least one role."))
    for role in role_values:
        if role not in {r.value for r in Role}:
            raise InvalidInput(_("Unknown role %(role)s.", role=role))
    _check_password(password)
    if password_hash is not None and not password_hash.startswith("$argon2"):
        raise InvalidInput(_("The password hash is not an argon2 hash."))
    user = User(username=username, display_name=(display_name or username).strip(),
                password_hash=password_hash or hash_password(password), institution=institution, department=department,
                session_token=secrets.token_hex(8),
                role_rows=[UserRole(role=r) for r in role_values])
    db.session.add(user)
    db.session.flush()
    record_event(actor, "user.create", "user", user.username,
                 {"institution": institution_code, "roles": role_values}, institution_id=institution.id)
    return user


def authenticate(username: str, password: str) -> tuple[User | None, str | None]:
    """Check a sign-in. Returns (user, None) or (None, message). Counts failures and locks
    the account after the configured number, for the configured minutes."""
    generic = _("Wrong user name or password.")
    user = get_user(username)
    if user is None:
        verify_password(_DUMMY_HASH, password or "")  # same time whether or not the user exists
        return None, generic
    now = utcnow()
    if user.locked_until and user.locked_until > now:
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        return None, _("This account is locked after too many failed sign-ins. Try again in %(m)d minutes.", m=minutes)
    if not verify_password(user.password_hash, password or ""):
        user.failed_logins += 1
        max_failures = current_app.config["XINDANG_LOGIN_MAX_FAILURES"]
        if user.failed_logins >= max_failures:
            user.locked_until = now + timedelta(minutes=current_app.config["XINDANG_LOGIN_LOCK_MINUTES"])
            user.failed_logins = 0
            record_event(None, "user.lock", "user", user.username, {"reason": "failed logins"},
                         institution_id=user.institution_id)
            return None, _("Too many failed sign-ins: the account is locked for %(m)d minutes.",
                           m=current_app.config["XINDANG_LOGIN_LOCK_MINUTES"])
        return None, generic
    if not user.is_active_flag:
        return None, _("This account has been deactivated.")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    record_event(user, "user.login", "user", user.username, {}, institution_id=user.institution_id)
    return user, None


_DUMMY_HASH = _hasher.hash("not-a-password")


def end_sessions(user: User) -> None:
    """Sign the user out of every browser: a new session token makes each session cookie issued
    before (a copy of one too) name a session that no longer exists. Called on sign-out."""
    user.session_token = secrets.token_hex(8)
    record_event(user, "user.logout", "user", user.username, {}, institution_id=user.institution_id)


def set_password(actor: User | None, user: User, password: str) -> None:
    _check_password(password)
    user.password_hash = hash_password(password)
    user.session_token = secrets.token_hex(8)
    record_event(actor, "user.set_password", "user", user.username, {}, institution_id=user.institution_id)


def deactivate_user(actor: User | None, user: User) -> None:
    """Deactivate the account and end its sessions. What the person still holds (loans to
    manage) is the caller's to check first (``portal.postloan.handover.deactivate_officer``)."""
    user.is_active_flag = False
    user.session_token = secrets.token_hex(8)
    record_event(actor, "user.deactivate", "user", user.username, {}, institution_id=user.institution_id)