"""Forms of the loan pages."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SubmitField


class ImportForm(FlaskForm):
    file = FileField(_l("Loan file (CSV or XLSX)"), validators=[FileRequired(_l("Choose a file to import."))])
    dry_run = BooleanField(_l("Only check the file, save nothing"))
    submit = SubmitField(_l("Import"))
