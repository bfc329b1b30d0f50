"""Dashboards per role and scope: the right panels, their numbers from the pages' functions,
SVG charts inline without script, the home page's first panels, and the dashboard PDF."""
from __future__ import annotations

import io
import re

from pypdf import PdfReader

from portal.auditing.dashboards import build_dashboard, panels_for


def panel_ids(html: str) -> list[str]:
    return re.findall(r'id="panel-(\w+)"', html)


def test_each_role_sees_its_panels(app, known_gaps):
    with app.app_context():
        org = known_gaps.org
        assert panels_for(org.user("officer")) == ["postloan_inspections", "risk_classes", "overdue_buckets",
                                                   "completeness"]
        assert panels_for(org.user("county_auditor")) == ["postloan_inspections", "risk_classes", "overdue_buckets",
                                                          "migration", "completeness", "completeness_trend", "lending",
                                                          "archive_inspections", "fixity"]
        assert panels_for(org.user("archivist")) == ["completeness", "completeness_trend", "lending",
                                                     "archive_inspections", "fixity"]
        assert panels_for(org.user("admin")) == ["risk_classes", "overdue_buckets"]
        assert panels_for(org.user("officer"), home=True) == ["postloan_inspections", "risk_classes",
                                                              "overdue_buckets"]


def test_panel_numbers_match_the_audit(app, known_gaps):
    with app.app_context():
        org = known_gaps.org
        panels = {p.key: p for p in build_dashboard(org.user("county_auditor"), org.inst("C1"))}
        assert panels["completeness"].rows == [["城关信用社", 3, 1, panels["completeness"].rows[0][3]],
                                               ["河西信用社", 4, 2, panels["completeness"].rows[1][3]]]
        assert [str(r[3]) for r in panels["completeness"].rows] == ["33.3", "50.0"]
        # Open loans (the settled and written-off ones are not): 5 in P's C1.
        assert sum(r[1] for r in panels["risk_classes"].rows) == 5
        assert panels["fixity"].svg is None and "No verification" in panels["fixity"].note
        # A branch officer's panels cover their branch only.
        mine = {p.key: p for p in build_dashboard(org.user("officer"), org.inst("B1"))}
        assert [r[0] for r in mine["completeness"].rows] == ["城关信用社"]
        assert sum(r[1] for r in mine["risk_classes"].rows) == 2


def test_dashboard_page_home_page_and_pdf(app, client, known_gaps, login):
    login(client, "county_auditor")
    page = client.get("/audit/dashboard")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert panel_ids(html)[:3] == ["postloan_inspections", "risk_classes", "overdue_buckets"]
    assert html.count("<svg") >= 6 and not re.findall(r"<script(?![^>]*\bsrc=)", html)
    home = client.get("/").get_data(as_text=True)
    assert panel_ids(home) == ["postloan_inspections", "risk_classes", "overdue_buckets"]
    assert 'id="stat-open"' in home                                           # what was there still is
    pdf = client.get("/audit/dashboard?format=pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "城关信用社" in text and "测试县联社" in text


def test_officer_home_page_and_admin_dashboard(app, client, known_gaps, login):
    login(client, "officer")
    home = client.get("/").get_data(as_text=True)
    assert panel_ids(home) == ["postloan_inspections", "risk_classes", "overdue_buckets"]
    admin = app.test_client()
    login(admin, "admin")
    response = admin.get("/audit/dashboard")
    assert response.status_code == 200 and panel_ids(response.get_data(as_text=True)) == ["risk_classes",
                                                                                         "overdue_buckets"]
