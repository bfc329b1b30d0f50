"""The rules every view shares (``portal/web.py``), and every form that takes a ``next`` going
back only to a page of this site.

The forms are found in the templates (a ``<form>`` with a field named ``next``, and the endpoint
its ``action`` names); each must have a recipe below that makes a real record to act on, so a
new form taking ``next`` fails here until it is tested too. Every POST route that goes back
through ``web.back``/``web.done`` is swept in ``tests/security/test_next_targets.py``.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask import session

import portal
from portal import web
from portal.extensions import db
from portal.routing import MAX_ID
from portal.timeutil import local_today

from tests.helpers.factories import PASSWORD, make_loan
from tests.helpers.web import login

# Off the site, or a broken header: browsers read "\" as "/" and drop tabs and line breaks, so
# "/\t/evil.example" is "//evil.example"; a line break in Location was a 500 after the save.
OFF_SITE = ["/\t/evil.example", "/\n/x", "/\r\n/x", "//evil.example", "/\\evil.example", "/\\x", "//x",
            "http://x", "https://evil.example/", "http:evil.example", "javascript:alert(1)", " //evil.example",
            "\\\\evil.example", "evil.example", "/\x7f/x", "/\x85/x", "/x\x00"]
ON_SITE = ["/", "/postloan/notices?status=pending", "/archive/?number=J012-XD·2024", "/a//b", "/%2F/x"]


# --- the rules ----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", OFF_SITE + ["", None, "relative/path"])
def test_a_target_off_the_site_is_refused(target):
    assert web.safe_target(target) is None


@pytest.mark.parametrize("target", ON_SITE)
def test_a_page_of_the_site_is_a_target(target):
    assert web.safe_target(target) == target


@pytest.mark.parametrize("raw, expected", [
    ("12", 12), (" 7 ", 7), (str(MAX_ID), MAX_ID), ("0", None), ("-1", None), ("abc", None), ("²", None),
    ("١٢", None), ("1.5", None), (str(MAX_ID + 1), None), ("9" * 40, None), ("", None)])
def test_an_id_is_a_number_a_record_can_have(app, raw, expected):
    with app.test_request_context("/", query_string={"x": raw}):
        assert web.id_arg("x") == expected
    with app.test_request_context("/", method="POST", data={"x": raw}):
        assert web.id_arg("x") == expected   # a form field, by the same rule
    with app.test_request_context("/"):
        assert web.id_arg("x") is None


def test_a_list_of_ids_leaves_out_what_no_record_can_have(app):
    with app.test_request_context("/", method="POST", data={"ids": ["3", "x", "1", "0", "99999999999", "²", "3"]}):
        assert web.id_list("ids") == [3, 1, 3]
        assert web.id_list("absent") == []


@pytest.mark.parametrize("raw, expected", [
    (None, 1), ("", 1), ("3", 3), ("0", 1), ("-5", 1), ("1.5", 1), ("abc", 1), ("²", 1),
    ("99999999999", MAX_ID), ("9" * 40, MAX_ID), (str(MAX_ID), MAX_ID)])
def test_a_page_number_is_at_least_one_and_at_most_any_page(app, raw, expected):
    with app.test_request_context("/", query_string={} if raw is None else {"page": raw}):
        assert web.page_arg("page") == expected


@pytest.mark.parametrize("raw, expected", [
    ("2024-06-03", date(2024, 6, 3)), (" 2024-06-03 ", date(2024, 6, 3)), ("1900-01-01", date(1900, 1, 1)),
    ("2999-12-31", date(2999, 12, 31)), ("", None), ("2024-02-30", None), ("9999-12-31", None),
    ("0001-01-01", None), ("1899-12-31", None), ("yesterday", None), ("2024-13-45", None)])
def test_a_date_that_is_not_one_is_ignored_as_if_absent(app, raw, expected):
    default = date(2024, 1, 1)
    with app.test_request_context("/", query_string={"start": raw}):
        assert web.date_arg("start") == expected
        assert web.date_arg("start", default) == (expected or default)


@pytest.mark.parametrize("next_value, location", [(None, "/home"), ("/postloan/notices?status=all", "/postloan/notices?status=all")]
                         + [(target, "/home") for target in ("/\t/evil.example", "/\n/x", "//evil.example")])
def test_done_commits_says_so_and_goes_back_to_a_page_of_the_site(app, next_value, location):
    data = {} if next_value is None else {"next": next_value}
    with app.test_request_context("/", method="POST", data=data):
        response = web.done("保存了", "/home")
        assert (response.status_code, response.headers["Location"]) == (302, location)
        assert session["_flashes"] == [("success", "保存了")]
        assert web.done("again", "/home", code=303).status_code == 303


def test_files_are_shown_or_downloaded_under_their_chinese_name(app):
    with app.test_request_context("/"):
        pdf = web.pdf_response(b"%PDF-1.4", "借阅登记簿-2024-06-03.pdf")
        sheet = web.file_response(b"PK", "完整性稽核-B1.xlsx",
                                  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        photo = web.file_response(b"\x89PNG", "现场照片.png", "image/png")
        page = web.file_response(b"<html>", "page.html", "text/html")
        asked = web.file_response(iter([b"a", b"b"]), "扫描件.pdf", "application/pdf", inline=False)
    assert pdf.headers["Content-Disposition"] == (
        "inline; filename=\"-2024-06-03.pdf\"; filename*=UTF-8''%E5%80%9F%E9%98%85%E7%99%BB%E8%AE%B0%E7%B0%BF"
        "-2024-06-03.pdf")
    assert pdf.mimetype == "application/pdf" and pdf.get_data() == b"%PDF-1.4"
    assert sheet.headers["Content-Disposition"].startswith('attachment; filename="-B1.xlsx"; filename*=UTF-8')
    assert photo.headers["Content-Disposition"].startswith("inline;")
    assert page.headers["Content-Disposition"].startswith("attachment;"), "HTML the portal did not write is never shown"
    assert asked.headers["Content-Disposition"].startswith("attachment;") and asked.get_data() == b"ab"


# --- every form that takes ``next`` -------------------------------------------------------------

TEMPLATES = Path(portal.__file__).parent / "templates"
FORM = re.compile(r"<form\b.*?</form>", re.S)
ACTION = re.compile(r"""action="\{\{\s*url_for\(\s*'([\w.]+)'""")


def forms_taking_next() -> dict[str, list[str]]:
    """Endpoint → the templates whose forms post ``next`` to it."""
    found: dict[str, list[str]] = {}
    for path in sorted(TEMPLATES.rglob("*.html")):
        for form in FORM.findall(path.read_text(encoding="utf-8")):
            if re.search(r"""name=["']next["']""", form):
                action = ACTION.search(form)
                assert action, f"{path.relative_to(TEMPLATES)}: a form with next whose action is not a url_for"
                found.setdefault(action.group(1), []).append(str(path.relative_to(TEMPLATES)))
    return found


def _language_switch(app, org, client, count):
    """Any signed-in user; goes back to the home page."""
    login(client, "officer")
    return [("/language/en", "/")] * count


def _issue_notice(app, org, client, count):
    """A loan officer issues a pending repayment notice of a loan of theirs; back to the notices."""
    from portal.postloan.daily import run_daily
    from portal.postloan.models import LoanNotice

    today = local_today()
    with app.app_context():
        loans = [make_loan(org.inst("B1"), org.user("officer"), borrower_name=f"通知户{i}",
                           maturity_on=today + timedelta(days=10)) for i in range(count)]
        db.session.commit()
        run_daily(today)
        db.session.commit()
        ids = [db.session.execute(db.select(LoanNotice.id).filter_by(loan_id=loan.id, status="pending"))
               .scalar_one() for loan in loans]
        db.session.remove()
    login(client, "officer")
    return [(f"/postloan/notices/{notice_id}/issue", "/postloan/notices") for notice_id in ids]


RECIPES = {"auth.set_language": _language_switch, "postloan.issue_notice": _issue_notice}
HOSTILE_NEXT = ["/\t/evil.example", "/\n/x", "//evil.example", "/\\evil.example", "https://evil.example/"]


def test_every_form_taking_next_has_a_recipe():
    found = forms_taking_next()
    assert {"auth.set_language", "postloan.issue_notice"} <= set(found), found
    assert set(found) == set(RECIPES), f"forms taking next without a recipe here: {set(found) - set(RECIPES)}"


@pytest.mark.parametrize("endpoint", sorted(RECIPES))
def test_a_form_goes_back_to_its_next_only_on_this_site(app, client, org, local_store, csrf_token, endpoint):
    """Each hostile ``next`` posted with a real record: done, and back to the form's own page;
    a ``next`` of this site is followed."""
    own = "/postloan/collection?status=pending"
    targets = RECIPES[endpoint](app, org, client, len(HOSTILE_NEXT) + 1)
    for (path, default), next_value in zip(targets, HOSTILE_NEXT + [own]):
        response = client.post(path, data={"next": next_value, "csrf_token": csrf_token(client, "/")})
        location = response.headers.get("Location", "")
        assert response.status_code == 302, (endpoint, next_value, response.status_code)
        assert location == (own if next_value == own else default), (endpoint, next_value, location)


@pytest.mark.parametrize("target", HOSTILE_NEXT + ["/\r\n/x", "//x", "/\\x", "http://x"])
def test_sign_in_goes_to_the_home_page_unless_next_is_a_page_of_the_site(app, client, org, csrf_token, target):
    response = client.post("/login", query_string={"next": target},
                           data={"username": "officer", "password": PASSWORD, "csrf_token": csrf_token(client)})
    assert (response.status_code, response.headers["Location"]) == (302, "/")
