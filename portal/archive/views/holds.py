"""Holds (冻结): the list, placing a hold on a credit file or a loan, and lifting it."""
from __future__ import annotations

from flask import abort, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...accounts.scope import can, get_scoped_or_404, require
from ...errors import InvalidInput
from ...loans.services import loan_by_contract_no
from ...web import done, id_arg
from .. import holds as holds_svc
from .. import services
from ..forms import HoldForm, ReasonForm
from ..models import Hold
from . import bp


@bp.route("/holds", methods=["GET", "POST"])
@require("hold.view")
def hold_list():
    form = HoldForm()
    if request.method == "POST":
        if not can(current_user, "hold.manage"):
            abort(403)
        if not form.validate_on_submit():
            raise InvalidInput(_("Give the kind, the loan or credit file, and the reason of the hold."))
        loan = volume = None
        if (form.volume_id.data or "").isdigit():
            volume = services.volume_or_404(current_user, id_arg("volume_id"))
        elif form.contract_no.data:
            loan = loan_by_contract_no(current_user, form.contract_no.data)
            if loan is None:
                raise InvalidInput(_("No loan %(no)s in your institution.", no=form.contract_no.data.strip()))
        hold = holds_svc.place_hold(current_user, kind=form.kind.data, reason=form.reason.data, loan=loan,
                                    volume=volume)
        return done(_("Hold #%(id)d placed.", id=hold.id), url_for("archive.hold_list"), code=303)
    show = request.args.get("show", "active")
    rows = holds_svc.holds_in_scope(current_user, lifted_too=show == "all")
    return render_template("archive/holds.html", rows=rows, form=form, show=show, reason_form=ReasonForm())


@bp.route("/holds/<int:hold_id>/lift", methods=["POST"])
@require("hold.manage")
def hold_lift(hold_id: int):
    hold = get_scoped_or_404(Hold, hold_id, current_user)
    holds_svc.lift_hold(current_user, hold, request.form.get("reason", ""))
    return done(_("Hold #%(id)d lifted.", id=hold.id), url_for("archive.hold_list"), code=303)
