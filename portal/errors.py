"""Errors a user can cause, and how they are shown.

Services raise these; views let them propagate. The handlers render a page in the user's
language (or JSON for API clients) with the right status code, after the request's
transaction has been rolled back, so a refused action changes nothing.
"""
from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from .extensions import db


class XindangError(Exception):
    """Base of every error a user can cause; ``message`` is already translated."""

    status = 400
    title = "Request refused"

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidInput(XindangError):
    status = 422


class PermissionDenied(XindangError):
    status = 403


class NotFound(XindangError):
    status = 404


class WrongState(XindangError):
    """The object exists but is not in a state that allows this action."""

    status = 409


class ServiceUnavailable(XindangError):
    """An external service (object store, search index) is down; nothing was changed."""

    status = 503


def not_found() -> NotFound:
    """The 404 of a record that does not exist or lies outside the user's subtree: one message
    for both, so that a refusal says nothing about what lies outside."""
    return NotFound(_("The page or record does not exist, or is outside your institution."))


class RulesConfigError(RuntimeError):
    """A rules plugin is unknown, misspelt or breaks the contract. Stops start-up."""


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return request.path.startswith("/api/") or (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def _titles() -> dict[int, str]:
    return {
        400: _("Bad request"),
        403: _("Access denied"),
        404: _("Not found"),
        405: _("Method not allowed"),
        409: _("Not possible in the current state"),
        413: _("File too large"),
        422: _("Invalid input"),
        429: _("Too many attempts"),
        500: _("Internal error"),
        503: _("Service unavailable"),
    }


def _render(status: int, message: str, details: list[str] | None = None):
    title = _titles().get(status, _("Error"))
    if _wants_json():
        return jsonify(error=title, message=message, details=details or []), status
    return render_template("error.html", status=status, title=title, message=message,
                           details=details or []), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(XindangError)
    def handle_xindang_error(exc: XindangError):
        db.session.rollback()
        return _render(exc.status, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException):
        db.session.rollback()
        messages = {
            400: _("The request could not be understood. If you submitted a form, reload the page and try again."),
            403: _("You do not have permission to see this page."),
            404: _("The page or record does not exist, or is outside your institution."),
            405: _("This action cannot be done this way."),
            413: _("The file is larger than the portal accepts."),
            429: _("Too many attempts. Please wait and try again."),
        }
        status = exc.code or 500
        return _render(status, messages.get(status, exc.description or ""))

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        db.session.rollback()
        app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        return _render(500, _("Something went wrong on our side. Nothing was saved. Please try again or tell your administrator."))
