"""Four journeys through the portal in headless Chromium, as the people who do them would: by
the menus, links, forms and buttons on the pages, asserting what each of them sees.

(a) a union admin enables a rules plugin and changes a setting, and a loan's page follows it;
(b) a loan officer records an inspection, the director signs it off, the report lands in the
    credit file;
(c) an archivist uploads a Word document with Chinese text, sorts, files and archives it, finds it
    by a Chinese phrase, and lends it to a loan officer who asked for it;
(d) a county auditor runs the completeness audit down to a branch and downloads its PDF.
"""
from __future__ import annotations

import io
import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the ``browser`` fixture skips (or, on CI, fails) with the reason
    expect = None

from portal.archive.services import collect_document
from portal.extensions import db
from portal.timeutil import local_today

from tests.helpers.files import docx_bytes, docx_text, pdf_text

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

# The portal as deployed: Chinese unless the user chooses otherwise, which each user here does on
# the sign-in page (the language switch is part of the journey).
pytestmark = pytest.mark.chinese


def flash(page):
    """The success message the last step showed."""
    return page.locator(".alert-success")


# --- (a) rules --------------------------------------------------------------------------------

def test_a_union_admin_enables_a_plugin_and_changes_a_setting(portal, app, make_loan, make_org):
    with app.app_context():
        org = make_org()
        loan = make_loan(org.inst("B1"), org.user("officer"), credit_rating="A")
        contract = loan.contract_no
        db.session.commit()

    page = portal.sign_in("union_admin")
    page.get_by_role("link", name="Rules", exact=True).click()
    expect(page.locator("h1")).to_contain_text("测试省农村信用社联合社")
    expect(page.locator("#enabled-plugin")).to_have_text("baseline only")

    page.get_by_label("Rules plugin").select_option("hunan")
    page.get_by_role("button", name="Enable").click()
    expect(flash(page)).to_have_text("Rules plugin updated.")
    expect(page.locator("#enabled-plugin")).to_have_text("hunan")
    expect(page.get_by_label("Send inspection reports on loans at major risk to the county union")).to_be_checked()

    interval = page.get_by_label("Routine interval for A and BBB (days)")
    expect(interval).to_have_value("90")
    interval.fill("九十")  # a slip: refused with a message, nothing saved
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".alert-danger").first).to_be_visible()
    expect(page.locator(".alert-success")).to_have_count(0)
    page.get_by_role("link", name="Rules", exact=True).click()
    expect(page.get_by_label("Routine interval for A and BBB (days)")).to_have_value("90")

    page.get_by_label("Routine interval for A and BBB (days)").fill("45")
    page.get_by_role("button", name="Save settings").click()
    expect(flash(page)).to_have_text("1 settings changed.")
    page.reload()
    expect(page.get_by_label("Routine interval for A and BBB (days)")).to_have_value("45")

    # The union's loans now follow the new interval.
    page.get_by_role("link", name="Loans", exact=True).click()
    page.get_by_role("link", name=contract).click()
    expect(page.get_by_role("row", name=re.compile("Routine inspection at least every"))).to_contain_text("45 days")


# --- (b) inspection and sign-off --------------------------------------------------------------

def test_an_officer_records_an_inspection_and_the_director_signs_it_off(portal, app, make_loan, make_org):
    with app.app_context():
        org = make_org()
        loan = make_loan(org.inst("B1"), org.user("officer"), borrower_name="赵春生", purpose="蔬菜大棚")
        contract = loan.contract_no
        db.session.commit()
    today = local_today().isoformat()
    conclusion = "借款人大棚蔬菜长势良好,贷款资金按约定用途使用。"

    officer = portal.sign_in("officer")
    officer.get_by_role("link", name="Loans", exact=True).click()
    officer.get_by_role("link", name=contract).click()
    officer.locator("#postloan-links").get_by_role("link", name="Inspections").click()
    officer.get_by_label("Kind").select_option("routine")
    officer.get_by_role("button", name="Record an inspection now").click()
    form = officer.locator("#inspection-form")
    form.get_by_label("Method").select_option("on_site")
    form.get_by_label("Date of the inspection").fill(today)
    answers = form.locator("input[type=radio][value=ok]")
    assert answers.count() >= 5, "the union's checklist is on the form"
    for i in range(answers.count()):
        answers.nth(i).check()
    form.get_by_label("Conclusion").fill(conclusion)
    form.get_by_role("button", name="Submit for sign-off").click()
    expect(flash(officer)).to_have_text("Inspection submitted for sign-off.")
    expect(officer.locator("#inspection-status")).to_have_text("Awaiting sign-off")
    expect(officer.get_by_role("button", name="Sign off")).to_have_count(0)  # never one's own

    director = portal.sign_in("director")
    director.get_by_role("link", name="Post-loan", exact=True).click()
    waiting = director.locator("#sign-off + table")
    expect(waiting).to_contain_text(contract)
    waiting.get_by_role("row", name=re.compile(contract)).get_by_role("link", name="Open").click()
    expect(director.locator("body")).to_contain_text(conclusion)
    director.get_by_label("Opinion").fill("同意,继续跟踪大棚销售回款。")
    director.get_by_role("button", name="Sign off").click()
    expect(flash(director)).to_have_text("Inspection signed off; the report is in the credit file.")
    expect(director.locator("#inspection-status")).to_have_text("Signed off")
    expect(director.get_by_text("in the credit file", exact=True)).to_be_visible()

    report = portal.open_pdf(director, director.get_by_role("link", name="Report (PDF)"))
    text = "".join(pdf_text(report).split())  # lines wrap inside words
    assert contract in text and "赵春生" in text and "大棚蔬菜长势良好" in text and "同意,继续跟踪" in text
    director.go_back()

    # The same report is in the borrower's credit file, waiting for the archivist.
    # The same link is in the next page's title: each click waits for its page, or the second
    # could land on the page the first is leaving.
    director.locator("h1").get_by_role("link", name=contract).click()  # the loan's post-loan page
    expect(director).to_have_url(re.compile(r"/postloan/loans/\d+$"))
    director.locator("h1").get_by_role("link", name=contract).click()  # the loan
    expect(director).to_have_url(re.compile(r"://[^/]+/loans/\d+$"))
    director.get_by_role("link", name="Credit file", exact=True).click()
    expect(director.locator("h1")).to_contain_text("赵春生")
    row = director.locator("tr[data-document]", has_text=f"inspection_report-{contract}-{today}.pdf")
    expect(row).to_have_count(1)
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "collected")
    row.get_by_role("link").first.click()
    _name, filed = portal.download(director, director.get_by_role("link", name="Download"))
    assert filed == report


# --- (c) the archivist's document, from upload to lending ----------------------------------------

def test_an_archivist_files_a_document_finds_it_by_a_chinese_phrase_and_lends_it(portal, app, make_loan, make_org):
    with app.app_context():
        org = make_org()
        loan = make_loan(org.inst("B1"), org.user("officer"), borrower_name="王建国")
        contract = loan.contract_no
        db.session.commit()
    content = docx_bytes("借款合同", f"合同编号:{contract}", "借款人王建国承诺贷款用于生猪养殖场扩建,不得挪作他用。")

    archivist = portal.sign_in("archivist")
    archivist.get_by_role("link", name="Loans", exact=True).click()
    archivist.get_by_role("link", name=contract).click()
    archivist.get_by_role("link", name="Credit file", exact=True).click()
    archivist.get_by_role("link", name="Upload documents").click()
    archivist.get_by_label("Document type").select_option("loan_contract")
    archivist.get_by_label("Loan", exact=True).select_option(label=contract)
    archivist.get_by_label("Files").set_input_files(
        files=[{"name": "借款合同-王建国.docx", "mimeType": DOCX, "buffer": content}])
    archivist.get_by_role("button", name="Upload").click()
    expect(archivist.locator("h1")).to_contain_text("Credit file")  # the page script moves on when stored
    row = archivist.locator("tr[data-document]", has_text="借款合同-王建国.docx")
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "collected")

    row.get_by_role("link").first.click()
    archivist.get_by_role("button", name="Checked: sort").click()
    expect(flash(archivist)).to_contain_text("sorted")
    archivist.get_by_role("button", name="File and give the archive number").click()
    expect(flash(archivist)).to_contain_text("Document filed with archive number")
    number = archivist.locator("#archive-number").inner_text().strip()
    assert re.fullmatch(r"J\d{3}-XD·\d{4}-\w+-B1-\d{4,}", number), number
    archivist.get_by_role("button", name="Archive and seal").click()  # the page asks first; yes
    expect(flash(archivist)).to_contain_text("archived and sealed")
    expect(archivist.get_by_text("Sealed", exact=True)).to_be_visible()

    # Found by a phrase of its content, typed into the search box of the menu bar (once
    # indexed, which the portal does within seconds and the test does now).
    portal.index_now()
    box = archivist.get_by_role("searchbox", name="Search the archive")
    box.fill("养殖场扩建")
    box.press("Enter")
    expect(archivist.locator("#search-total")).to_have_text(re.compile(r"^\s*1 documents? found"))
    hit = archivist.locator(".xd-search-hit")
    expect(hit).to_contain_text(number)
    expect(hit.locator(".xd-snippet")).to_contain_text("养殖场扩建")
    hit.get_by_role("link").first.click()
    expect(archivist.locator("#archive-number")).to_have_text(number)

    # A loan officer asks to borrow it …
    officer = portal.sign_in("officer")
    officer.get_by_role("link", name="Loans", exact=True).click()
    officer.get_by_role("link", name=contract).click()
    officer.get_by_role("link", name="Credit file", exact=True).click()
    officer.locator("tr[data-document]", has_text=number).get_by_label("Select for lending").check()
    officer.get_by_role("button", name="Request lending of the selected archived documents").click()
    expect(officer.locator("main form")).to_contain_text(number)
    officer.get_by_label("Reason").fill("贷后检查核对合同约定用途")
    officer.get_by_role("button", name="Send the request").click()
    expect(flash(officer)).to_contain_text("requested")
    expect(officer.locator("#lending-state")).to_have_text("Requested")
    lending_id = re.search(r"#(\d+)", officer.locator("h1").inner_text()).group(1)

    # … the archivist approves and issues it …
    archivist.get_by_role("link", name="Credit archive", exact=True).click()
    expect(archivist).to_have_url(re.compile(r"/archive/$"))
    archivist.get_by_role("link", name="Lending", exact=True).click()
    archivist.locator("#to-decide").get_by_role("link", name=lending_id, exact=True).click()
    expect(archivist.locator("body")).to_contain_text("贷后检查核对合同约定用途")
    archivist.get_by_role("button", name="Approve").click()
    expect(flash(archivist)).to_have_text("Lending approved.")
    archivist.get_by_role("button", name="Issue").click()
    expect(flash(archivist)).to_have_text("Lending issued.")
    expect(archivist.locator("#lending-state")).to_have_text("On loan")

    # … and the officer reads it, the opening registered under the lending.
    officer.reload()
    expect(officer.locator("#lending-state")).to_have_text("On loan")
    officer.get_by_role("link", name="王建国").first.click()
    officer.locator("tr[data-document]", has_text=number).get_by_role("link").first.click()
    name, data = portal.download(officer, officer.get_by_role("link", name="Download"))
    assert name.endswith(".docx")
    assert "生猪养殖场扩建" in docx_text(data)
    portal.index_now()
    box = officer.get_by_role("searchbox", name="Search the archive")  # the lending lets them find it too
    box.fill("养殖场扩建")
    box.press("Enter")
    expect(officer.locator(".xd-search-hit")).to_contain_text(number)
    archivist.reload()
    expect(archivist.locator("#lending-accesses")).to_contain_text("officer")


# --- (d) the completeness audit -------------------------------------------------------------------

def test_a_county_auditor_runs_the_completeness_audit_and_downloads_its_pdf(portal, app, make_loan, make_org):
    with app.app_context():
        org = make_org()
        complete_ish = make_loan(org.inst("B1"), org.user("officer"), borrower_name="陈立新")
        bare = make_loan(org.inst("B1"), org.user("officer"), borrower_name="刘玉兰")
        make_loan(org.inst("B2"), org.user("officer2"), borrower_name="周海")
        collect_document(org.user("archivist"), borrower=complete_ish.borrower, loan=complete_ish,
                         doc_type="loan_contract", fileobj=io.BytesIO(docx_bytes("借款合同 陈立新")),
                         filename="借款合同.docx")
        bare_contract, filed_contract = bare.contract_no, complete_ish.contract_no
        db.session.commit()

    auditor = portal.sign_in("county_auditor")
    auditor.get_by_role("link", name="Dashboards and audit").click()
    auditor.locator(".xd-audit-nav").get_by_role("link", name="Completeness").click()
    expect(auditor.locator("h1")).to_contain_text("测试县联社")
    branches = auditor.locator("#completeness-children")
    expect(branches.locator("tr[data-code]")).to_have_count(2)
    expect(auditor.locator("#total-files")).to_have_text("3")
    branches.get_by_role("link", name="城关信用社").click()
    expect(auditor.locator("h1")).to_contain_text("城关信用社")
    expect(auditor.locator("#total-files")).to_have_text("2")
    # The contract collected for one loan counts; the other loan still lacks it.
    missing_contract = '[data-missing="loan_contract"]'
    expect(auditor.locator(f'#incomplete-loans tr[data-contract="{bare_contract}"] {missing_contract}')).to_have_count(1)
    expect(auditor.locator(f'#incomplete-loans tr[data-contract="{filed_contract}"]')).to_be_visible()
    expect(auditor.locator(f'#incomplete-loans tr[data-contract="{filed_contract}"] {missing_contract}')).to_have_count(0)

    report = pdf_text(portal.open_pdf(auditor, auditor.get_by_role("link", name="PDF", exact=True)))
    flat = "".join(report.split())  # table cells wrap inside words
    assert "Creditfilecompletenessaudit" in flat and "Files(loans):2" in flat
    assert bare_contract in flat and "刘玉兰" in flat and "城关信用社" in flat
    auditor.go_back()
    expect(auditor.locator("h1")).to_contain_text("城关信用社")
