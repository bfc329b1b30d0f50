"""PDF rendering: one function, WeasyPrint underneath, Chinese fonts from the system.

Every PDF in the portal (lists, registers, notices, reports) is an HTML template extending
``reports/pdf_base.html`` rendered by ``render_pdf``. The base template puts the institution
and the date in the header and page numbers in the footer (CSS paged media).
"""
from __future__ import annotations

from datetime import datetime

from flask import render_template

from ..timeutil import CST

# Fonts tried in order; fontconfig resolves whichever is installed (scripts/system-deps.sh
# installs WenQuanYi Micro Hei where it can).
CJK_FONTS = '"WenQuanYi Micro Hei", "Noto Sans CJK SC", "Noto Serif CJK SC", "Source Han Sans SC", sans-serif'


def render_pdf(template: str, *, title: str, institution_name: str, **context) -> bytes:
    """Render ``template`` (extending reports/pdf_base.html) to PDF bytes."""
    from weasyprint import HTML  # imported late: it loads Pango, which costs start-up time

    html = render_template(template, title=title, institution_name=institution_name,
                           generated_at=datetime.now(CST).strftime("%Y-%m-%d %H:%M"),
                           cjk_fonts=CJK_FONTS, **context)
    return HTML(string=html).write_pdf()
