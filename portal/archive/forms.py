"""Forms of the archive pages. Choices that come from the rules plugin or the database are
filled in by the view; the services check everything again."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (BooleanField, HiddenField, IntegerField, MultipleFileField, RadioField, SelectField,
                     StringField, TextAreaField)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional


class UploadForm(FlaskForm):
    doc_type = SelectField(_l("Document type"), validators=[DataRequired()])
    loan = SelectField(_l("Loan"), coerce=int, default=0)
    paper_original = BooleanField(_l("A paper original is kept"))
    version_of = HiddenField()
    files = MultipleFileField(_l("Files"), validators=[DataRequired(_l("Choose at least one file."))])


class SortForm(FlaskForm):
    doc_type = SelectField(_l("Document type"), validators=[DataRequired()])
    loan = SelectField(_l("Loan"), coerce=int, default=0)


class ArchiveForm(FlaskForm):
    shelf_location = StringField(_l("Shelf location"), validators=[Optional(), Length(max=64)])


class ShelfForm(FlaskForm):
    shelf_location = StringField(_l("Shelf location"), validators=[DataRequired(), Length(max=64)])


class ReasonForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=2000)])


class NoteForm(FlaskForm):
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=2000)])


class LendingRequestForm(FlaskForm):
    medium = RadioField(_l("What you need"), choices=[("digital", _l("Digital copy")),
                                                      ("paper", _l("Paper original"))], default="digital")
    days = IntegerField(_l("For how many days"), default=7, validators=[InputRequired(), NumberRange(min=1)])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=2000)])


class RenewForm(FlaskForm):
    days = IntegerField(_l("Extend by (days)"), default=7, validators=[InputRequired(), NumberRange(min=1)])


class TransferForm(FlaskForm):
    receiver = SelectField(_l("Receiving institution"), coerce=int)
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=2000)])


class HoldForm(FlaskForm):
    kind = SelectField(_l("Kind"), choices=[("legal", _l("Legal hold")), ("audit", _l("Audit hold"))])
    contract_no = StringField(_l("Loan contract no."), validators=[Optional(), Length(max=64)])
    volume_id = HiddenField()
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=2000)])


class DestructionListForm(FlaskForm):
    institution = SelectField(_l("Institution holding the documents"), coerce=int)
    appraisal = TextAreaField(_l("Appraisal opinion"), validators=[DataRequired(), Length(max=5000)])


class DestructionItemsForm(FlaskForm):
    numbers = TextAreaField(_l("Archive numbers, one per line"), validators=[Optional(), Length(max=20000)])
