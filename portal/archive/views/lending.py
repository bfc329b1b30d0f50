"""Lending (借阅): the lending desk, a request from the credit file, a lending's page and its
steps, the lending register (借阅登记簿) and the overdue list."""
from __future__ import annotations

from flask import abort, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...accounts.scope import require
from ...reports.pdf import render_pdf
from ...timeutil import local_today
from ...web import date_arg, done, id_arg, id_list, pdf_response
from .. import lending as lending_svc
from .. import services
from ..forms import LendingRequestForm, NoteForm, RenewForm
from ..labels import doc_type_names
from ..queries import lending_desk
from . import bp


@bp.route("/lending")
@require("archive.view")
def lending_list():
    return render_template("archive/lending_list.html", **vars(lending_desk(current_user)), today=local_today())


@bp.route("/lending/new", methods=["POST"])
@require("lending.request")
def lending_new():
    volume = services.volume_or_404(current_user, id_arg("volume_id"))
    documents = services.documents_or_404(current_user, id_list("document_ids"))
    form = LendingRequestForm()
    if "reason" not in request.form:  # coming from the credit file: show the request form
        return render_template("archive/lending_new.html", volume=volume, documents=documents, form=form,
                               type_names=doc_type_names(volume.borrower.institution))
    lending = lending_svc.request_lending(current_user, volume, documents, medium=request.form.get("medium", ""),
                                         reason=request.form.get("reason", ""), days=request.form.get("days"))
    return done(_("Lending #%(id)d requested; a director or archivist will decide.", id=lending.id),
                url_for("archive.lending_detail", lending_id=lending.id), code=303)


@bp.route("/lending/<int:lending_id>")
@require("archive.view")
def lending_detail(lending_id: int):
    lending = lending_svc.get_lending_or_404(current_user, lending_id)
    return render_template("archive/lending_detail.html", lending=lending,
                           accesses=lending_svc.accesses_through(lending), today=local_today(),
                           can_open=lending_svc.can_open_through(current_user, lending),
                           may_decide=lending_svc.may_decide(current_user, lending),
                           type_names=doc_type_names(lending.volume.borrower.institution),
                           note_form=NoteForm(), renew_form=RenewForm())


@bp.route("/lending/<int:lending_id>/<action>", methods=["POST"])
@require("archive.view")
def lending_action(lending_id: int, action: str):
    lending = lending_svc.get_lending_or_404(current_user, lending_id)
    note = request.form.get("note", "")
    steps = {
        "approve": (lambda: lending_svc.approve_lending(current_user, lending, note), _("Lending approved.")),
        "refuse": (lambda: lending_svc.refuse_lending(current_user, lending, note), _("Lending refused.")),
        "withdraw": (lambda: lending_svc.withdraw_lending(current_user, lending), _("Request withdrawn.")),
        "issue": (lambda: lending_svc.issue_lending(current_user, lending), _("Lending issued.")),
        "renew": (lambda: lending_svc.renew_lending(current_user, lending, request.form.get("days")),
                  _("Lending renewed.")),
        "return": (lambda: lending_svc.return_lending(current_user, lending, note), _("Lending returned.")),
        "remind": (lambda: lending_svc.remind_lending(current_user, lending), _("Reminder recorded.")),
    }
    if action not in steps:
        abort(404)
    step, message = steps[action]
    step()
    return done(message, url_for("archive.lending_detail", lending_id=lending.id), code=303)


@bp.route("/lending/register")
@require("lending.register")
def lending_register():
    start, end = date_arg("start"), date_arg("end")
    rows = lending_svc.register_rows(current_user, start, end)
    if request.args.get("format") == "pdf":
        pdf = render_pdf("reports/archive_lending_register.html", title=_("Lending register"),
                         institution_name=current_user.institution.name, rows=rows, start=start, end=end,
                         type_names=doc_type_names(current_user.institution, chinese=True))
        return pdf_response(pdf, f"借阅登记簿-{local_today().isoformat()}.pdf")
    return render_template("archive/lending_register.html", rows=rows, start=start, end=end, today=local_today())


@bp.route("/lending/overdue")
@require("lending.register")
def lending_overdue():
    return render_template("archive/lending_overdue.html", rows=lending_svc.overdue_lendings(current_user),
                           today=local_today())
