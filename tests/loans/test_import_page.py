"""The import page, /loans/import: who may use it, the upload, the report and the format table."""
from __future__ import annotations

import io

import pytest

from portal.loans.importing.columns import COLUMNS

from .loans_helpers import PNG, csv_bytes, loan_count, loan_row, xlsx_bytes

PATH = "/loans/import"


@pytest.fixture()
def upload(csrf_token):
    """``upload(client, data, name="loans.csv", **fields)``: post a loan file to the import page."""
    def send(client, data: bytes, name: str = "loans.csv", **fields):
        token = csrf_token(client, PATH)
        return client.post(PATH, data={"csrf_token": token, "file": (io.BytesIO(data), name), **fields},
                           content_type="multipart/form-data")
    return send


def test_officer_is_refused(client, org, csrf_token, login):
    login(client, "officer")
    assert client.get(PATH).status_code == 403
    token = csrf_token(client, "/")
    response = client.post(PATH, data={"csrf_token": token, "file": (io.BytesIO(csv_bytes([loan_row(1)])), "x.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 403


def test_page_shows_form_and_format_table(client, org, login):
    login(client, "director")
    page = client.get(PATH)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'type="file"' in text and 'name="csrf_token"' in text
    for column in COLUMNS:
        assert column.header_zh in text and column.key in text
    assert "农户小额信用贷款" in text and "HT-2024-0001" in text  # product names and the sample


def test_good_upload_is_saved(client, app, org, login, upload):
    login(client, "director")
    response = upload(client, csv_bytes([loan_row(1), loan_row(2)]))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'id="problem-table"' not in text and 'alert-success' in text
    with app.app_context():
        assert loan_count() == 2


def test_reimport_shows_changes(client, app, org, login, upload):
    login(client, "director")
    assert upload(client, csv_bytes([loan_row(1)])).status_code == 200
    response = upload(client, csv_bytes([loan_row(1, balance="12,345.67", status="逾期", days_past_due="9")]))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'id="change-table"' in text and "12,345.67" in text and "48,000.00" in text
    with app.app_context():
        assert loan_count() == 1


def test_bad_row_is_422_and_nothing_saved(client, app, org, login, upload):
    login(client, "director")
    response = upload(client, csv_bytes([loan_row(1), loan_row(2, officer="ghost")]), name="台账.csv")
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert 'id="problem-table"' in text
    assert "<td>3</td><td>管户客户经理</td>" in text and "ghost" in text
    with app.app_context():
        assert loan_count() == 0


def test_out_of_scope_branch_is_refused_for_a_branch_director(client, app, org, login, upload):
    login(client, "director")
    response = upload(client, csv_bytes([loan_row(1, branch_code="B2", officer="officer2")]))
    assert response.status_code == 422
    assert "<td>2</td><td>机构代码</td>" in response.get_data(as_text=True)
    with app.app_context():
        assert loan_count() == 0


def test_png_renamed_csv_is_refused(client, app, org, login, upload):
    login(client, "director")
    response = upload(client, PNG, name="loans.csv")
    assert response.status_code == 422
    assert "PNG" in response.get_data(as_text=True)


def test_xlsx_upload_and_check_only(client, app, org, login, upload):
    login(client, "union_admin")
    row = loan_row(3)
    keys = ["contract_no", "borrower_name", "id_number", "branch_code", "product", "guarantee_type", "amount",
            "balance", "rate", "disbursed_on", "maturity_on", "officer"]
    data = xlsx_bytes([keys, [row[k] for k in keys]])
    response = upload(client, data, name="loans.xlsx", dry_run="y")
    assert response.status_code == 200
    with app.app_context():
        assert loan_count() == 0
    assert upload(client, data, name="loans.xlsx").status_code == 200
    with app.app_context():
        assert loan_count() == 1


def test_post_without_file_is_refused(client, org, csrf_token, login):
    login(client, "director")
    token = csrf_token(client, PATH)
    response = client.post(PATH, data={"csrf_token": token}, content_type="multipart/form-data")
    assert response.status_code == 400
