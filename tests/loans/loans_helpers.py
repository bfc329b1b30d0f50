"""Loan files for the import tests (CSV and Excel built in memory, rows with valid ID numbers),
and the number of loans in the database (call it inside an app context)."""
from __future__ import annotations

import csv
import io

import openpyxl
from sqlalchemy import func, select

from portal.extensions import db
from portal.loans.importing.columns import COLUMNS
from portal.loans.models import Loan

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def resident_id(n: int) -> str:
    """A resident ID number with a correct check digit (GB 11643)."""
    body = f"43010119800101{n:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, WEIGHTS)) % 11]


ZH = {c.key: c.header_zh for c in COLUMNS}


def loan_row(n: int = 1, **fields) -> dict:
    row = {
        "contract_no": f"HT-2024-{n:04d}", "borrower_name": f"借款人{n}", "borrower_kind": "个人",
        "id_number": resident_id(n), "credit_rating": "A", "branch_code": "B1",
        "product": "农户小额信用贷款", "guarantee_type": "信用", "amount": "50,000.00", "balance": "48,000.00",
        "rate": "5.25", "disbursed_on": "2024-03-01", "maturity_on": "2025-03-01", "payment_method": "受托支付",
        "purpose": "种植", "status": "正常", "days_past_due": "0", "interest_arrears": "0", "risk_class": "正常",
        "officer": "officer",
    }
    row.update(fields)
    return row


def csv_bytes(rows: list[dict], *, headers: str = "zh", encoding: str = "utf-8", delimiter: str = ",") -> bytes:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([ZH[k] if headers == "zh" else k for k in keys])
    for row in rows:
        writer.writerow([row.get(k, "") for k in keys])
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list], title: str | None = None) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    if title:
        sheet.append([title])
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"


def loan_count() -> int:
    return db.session.execute(select(func.count()).select_from(Loan)).scalar_one()
