"""Forms of the audit workspace. The inspection record has one result and note per sampled
credit file, so the view reads those fields itself; the services check everything again."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from .inspections import SAMPLE_DEFAULT, SAMPLE_MAX


class VerifyForm(FlaskForm):
    """The button that re-hashes one institution's files now."""

    institution = HiddenField(validators=[DataRequired()])


class StartInspectionForm(FlaskForm):
    target = HiddenField(validators=[DataRequired()])
    sample_size = IntegerField(_l("Credit files to sample"), default=SAMPLE_DEFAULT,
                               validators=[Optional(), NumberRange(min=1, max=SAMPLE_MAX)])


class CancelInspectionForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=2000)])
