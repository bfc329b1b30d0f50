"""``flask loans import FILE [--json] [--user USERNAME] [--dry-run]``."""
from __future__ import annotations

import json

from sqlalchemy import select

from portal.extensions import db
from portal.loans.models import Loan

from .loans_helpers import PNG, csv_bytes, loan_count, loan_row, xlsx_bytes


def write(tmp_path, data: bytes, name: str = "loans.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_good_file_is_imported_with_exit_0(app, runner, org, tmp_path):
    path = write(tmp_path, csv_bytes([loan_row(1), loan_row(2)]))
    result = runner.invoke(args=["loans", "import", path])
    assert result.exit_code == 0, result.output
    assert "2 created" in result.output
    with app.app_context():
        assert loan_count() == 2


def test_json_report_and_reimport(app, runner, org, tmp_path):
    path = write(tmp_path, csv_bytes([loan_row(1)]))
    assert runner.invoke(args=["loans", "import", path]).exit_code == 0
    path = write(tmp_path, csv_bytes([loan_row(1, balance="10,000.00"), loan_row(2)]), "again.csv")
    result = runner.invoke(args=["loans", "import", path, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and report["written"]
    assert (report["created"], report["updated"], report["unchanged"]) == (1, 1, 0)
    assert report["changes"][0]["changes"]["balance_fen"] == [4_800_000, 1_000_000]
    with app.app_context():
        assert loan_count() == 2
        assert db.session.execute(select(Loan.balance_fen).filter_by(contract_no="HT-2024-0001")).scalar_one() == 1_000_000


def test_bad_row_exits_1_writes_nothing_and_names_row_and_column(app, runner, org, tmp_path):
    path = write(tmp_path, csv_bytes([loan_row(1), loan_row(2), loan_row(3, maturity_on="2023-12-31")]))
    result = runner.invoke(args=["loans", "import", path, "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert not report["ok"] and not report["written"]
    assert report["problems"] == [{"row": 4, "column": "到期日期",
                                   "reason": report["problems"][0]["reason"]}]
    text = runner.invoke(args=["loans", "import", path])
    assert text.exit_code == 1 and "row 4, 到期日期" in text.output
    with app.app_context():
        assert loan_count() == 0


def test_xlsx_file(app, runner, org, tmp_path):
    header = ["contract_no", "borrower_name", "id_number", "branch_code", "product", "guarantee_type", "amount",
              "balance", "rate", "disbursed_on", "maturity_on", "officer"]
    row = loan_row(5)
    path = write(tmp_path, xlsx_bytes([header, [row[k] for k in header]]), "loans.xlsx")
    result = runner.invoke(args=["loans", "import", path, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["created"] == 1


def test_dry_run_saves_nothing(app, runner, org, tmp_path):
    path = write(tmp_path, csv_bytes([loan_row(1)]))
    result = runner.invoke(args=["loans", "import", path, "--dry-run"])
    assert result.exit_code == 0 and "dry run" in result.output
    with app.app_context():
        assert loan_count() == 0


def test_user_option_limits_scope(app, runner, org, tmp_path):
    path = write(tmp_path, csv_bytes([loan_row(1, branch_code="B2", officer="officer2")]))
    result = runner.invoke(args=["loans", "import", path, "--user", "director", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["problems"][0]["column"] == "机构代码"
    assert runner.invoke(args=["loans", "import", path, "--user", "director2"]).exit_code == 0
    with app.app_context():
        assert loan_count() == 1


def test_user_option_errors_exit_2(app, runner, org, tmp_path):
    path = write(tmp_path, csv_bytes([loan_row(1)]))
    assert runner.invoke(args=["loans", "import", path, "--user", "nobody"]).exit_code == 2
    assert runner.invoke(args=["loans", "import", path, "--user", "officer"]).exit_code == 2  # may not import
    assert runner.invoke(args=["loans", "import", str(tmp_path / "missing.csv")]).exit_code == 2
    with app.app_context():
        assert loan_count() == 0


def test_png_renamed_csv_is_refused(app, runner, org, tmp_path):
    result = runner.invoke(args=["loans", "import", write(tmp_path, PNG, "photo.csv")])
    assert result.exit_code == 1 and "PNG" in result.output
