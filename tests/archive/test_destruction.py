"""Destruction: refused, with the reason, before the retention period has run out, on an
unsettled loan and under a hold; done after appraisal, approval by someone else and two
supervisors of two departments: objects deleted, tombstones kept, the list kept as a PDF."""
from datetime import date

import pytest
from sqlalchemy import select

from portal.archive.destruction import retention_expires_on
from portal.archive.models import DestructionList, Document, Hold, ListFile
from portal.extensions import db
from portal.loans.models import Loan

from tests.helpers.files import pdf_text_without_spaces

from .archive_helpers import archived_documents, make_archive_setup, post


def _settle(app, loan_id, day: date | None, status="settled"):
    with app.app_context():
        loan = db.session.get(Loan, loan_id)
        loan.status, loan.settled_on, loan.balance_fen = status, day, 0
        db.session.commit()


def _new_list(app, client, setup) -> int:
    with app.app_context():
        b1 = setup.org.inst("B1").id
    response = post(client, "/archive/destruction", {"institution": b1, "appraisal": "经鉴定,保管期限已满"})
    assert response.status_code == 303, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _add(client, list_id, ids):
    return post(client, f"/archive/destruction/{list_id}/add", {"document_ids": ids})


def test_retention_counts_from_the_first_of_january_after_settlement():
    assert retention_expires_on(date(2010, 12, 31), 30) == date(2041, 1, 1)
    assert retention_expires_on(date(2010, 1, 1), 10) == date(2021, 1, 1)


def test_refused_on_an_unsettled_loan(app, client, store, setup, login):
    _volume, ids = archived_documents(app, setup)
    login(client, "archivist")
    list_id = _new_list(app, client, setup)
    response = _add(client, list_id, ids)
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"Loan {setup.contract_no} is" in text and "not settled or written off" in text


def test_refused_before_the_retention_period_has_run_out(app, client, store, setup, login):
    _volume, ids = archived_documents(app, setup)
    _settle(app, setup.loan_id, date(2020, 6, 30))
    login(client, "archivist")
    list_id = _new_list(app, client, setup)
    response = _add(client, list_id, ids)
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "retention period" in text and "from 1 January 2021" in text and "runs until 2051-01-01" in text
    # Typed by archive number instead: the same refusal.
    with app.app_context():
        number = db.session.get(Document, ids[0]).archive_number
    by_number = post(client, f"/archive/destruction/{list_id}/add", {"numbers": number})
    assert by_number.status_code == 422 and "runs until 2051-01-01" in by_number.get_data(as_text=True)


def test_refused_under_a_hold_and_allowed_once_lifted(app, client, store, setup, login):
    _volume, ids = archived_documents(app, setup)
    _settle(app, setup.loan_id, date(1990, 3, 1))
    director = client
    login(director, "director")
    # Holds need a reason.
    assert post(director, "/archive/holds", {"kind": "legal", "contract_no": setup.contract_no,
                                             "reason": ""}).status_code == 422
    assert post(director, "/archive/holds", {"kind": "legal", "contract_no": setup.contract_no,
                                             "reason": "(2024)湘0102民初123号 诉讼中"}).status_code == 303
    with app.app_context():
        hold_id = db.session.execute(select(Hold.id)).scalar_one()
    assert "诉讼中" in director.get("/archive/holds").get_data(as_text=True)
    archivist = app.test_client()
    login(archivist, "archivist")
    assert "Under hold" in archivist.get(f"/archive/borrowers/{setup.borrower_id}").get_data(as_text=True)
    list_id = _new_list(app, archivist, setup)
    response = _add(archivist, list_id, ids)
    assert response.status_code == 422
    assert "legal hold" in response.get_data(as_text=True) and "诉讼中" in response.get_data(as_text=True)
    # Auditors read holds but cannot place or lift them.
    auditor = app.test_client()
    login(auditor, "auditor")
    assert auditor.get("/archive/holds").status_code == 200
    assert post(auditor, f"/archive/holds/{hold_id}/lift", {"reason": "x"}).status_code == 403
    assert post(director, f"/archive/holds/{hold_id}/lift", {"reason": ""}).status_code == 422
    assert post(director, f"/archive/holds/{hold_id}/lift", {"reason": "判决已生效,案件终结"}).status_code == 303
    with app.app_context():
        hold = db.session.get(Hold, hold_id)
        assert hold.lifted_at is not None and hold.lift_reason == "判决已生效,案件终结"
    assert _add(archivist, list_id, ids).status_code == 303


def test_hold_on_the_credit_file(app, client, store, setup, login):
    volume_id, ids = archived_documents(app, setup)
    _settle(app, setup.loan_id, date(1990, 3, 1))
    login(client, "archivist")
    assert post(client, "/archive/holds", {"kind": "audit", "volume_id": volume_id,
                                           "reason": "审计署专项审计"}).status_code == 303
    list_id = _new_list(app, client, setup)
    response = _add(client, list_id, ids)
    assert response.status_code == 422 and "audit hold" in response.get_data(as_text=True)


def test_destruction_done_after_every_step(app, client, store, setup, runner, login):
    _volume, ids = archived_documents(app, setup, 2)
    _settle(app, setup.loan_id, date(1990, 3, 1))
    with app.app_context():
        keys = [db.session.get(Document, i).object_key for i in ids]
    archivist = client
    login(archivist, "archivist")
    list_id = _new_list(app, archivist, setup)
    page = archivist.get(f"/archive/destruction/{list_id}").get_data(as_text=True)
    assert 'id="eligible-documents"' in page  # both are offered
    assert _add(archivist, list_id, ids).status_code == 303
    assert post(archivist, f"/archive/destruction/{list_id}/approve").status_code == 403
    assert post(archivist, f"/archive/destruction/{list_id}/propose").status_code == 303

    director = app.test_client()
    login(director, "director")
    assert post(director, f"/archive/destruction/{list_id}/approve").status_code == 303

    # Two supervisors from two departments; not the proposer, not twice the same department.
    assert post(archivist, f"/archive/destruction/{list_id}/confirm").status_code == 403
    officer = app.test_client()
    login(officer, "officer")                 # 信贷部
    assert post(officer, f"/archive/destruction/{list_id}/confirm").status_code == 303
    assert post(officer, f"/archive/destruction/{list_id}/confirm").status_code == 403
    same_dept = post(director, f"/archive/destruction/{list_id}/confirm")  # also 信贷部
    assert same_dept.status_code == 403 and "another department" in same_dept.get_data(as_text=True)
    post_loan = app.test_client()
    login(post_loan, "post_loan")             # 风险管理部
    assert post(archivist, f"/archive/destruction/{list_id}/execute").status_code == 409
    assert post(post_loan, f"/archive/destruction/{list_id}/confirm").status_code == 303

    assert post(archivist, f"/archive/destruction/{list_id}/execute").status_code == 303
    with app.app_context():
        dl = db.session.get(DestructionList, list_id)
        assert dl.state == "executed" and dl.list_file_id is not None
        docs = [db.session.get(Document, i) for i in ids]
        assert {d.state for d in docs} == {"destroyed"}  # tombstones kept
        assert all(d.sha256 and d.archive_number for d in docs)
        list_key = db.session.get(ListFile, dl.list_file_id).object_key
    assert not any(store.exists(k) for k in keys)
    assert store.exists(list_key)
    pdf = archivist.get(f"/archive/destruction/{list_id}/list.pdf")
    text = pdf_text_without_spaces(pdf.data)
    assert "王建国" in text and "借款合同" in text and "经鉴定,保管期限已满" in text and "风险管理部" in text
    # Destroyed content cannot be opened; the store is consistent afterwards.
    assert archivist.get(f"/archive/documents/{ids[0]}/open").status_code == 409
    assert archivist.get(f"/archive/documents/{ids[0]}").status_code == 200
    result = runner.invoke(args=["archive", "verify", "--json", "--quiet"])
    assert result.exit_code == 0, result.output


def test_execution_rechecks_a_hold_placed_after_approval(app, client, store, setup, login):
    _volume, ids = archived_documents(app, setup)
    _settle(app, setup.loan_id, date(1990, 3, 1))
    with app.app_context():
        from portal.archive import destruction as svc
        from portal.archive.holds import place_hold
        org = setup.org
        dl = svc.create_destruction_list(org.user("archivist"), org.inst("B1"), "鉴定")
        svc.add_to_destruction_list(org.user("archivist"), dl, [db.session.get(Document, ids[0])])
        svc.propose_destruction(org.user("archivist"), dl)
        svc.approve_destruction(org.user("director"), dl)
        svc.confirm_destruction(org.user("officer"), dl)
        svc.confirm_destruction(org.user("post_loan"), dl)
        place_hold(org.user("director"), kind="legal", reason="新发诉讼", loan=db.session.get(Loan, setup.loan_id))
        db.session.commit()
        list_id, key = dl.id, db.session.get(Document, ids[0]).object_key
    login(client, "archivist")
    response = post(client, f"/archive/destruction/{list_id}/execute")
    assert response.status_code == 409 and "新发诉讼" in response.get_data(as_text=True)
    assert store.exists(key)
    with app.app_context():
        assert db.session.get(Document, ids[0]).state == "archived"


def test_permanent_documents_are_never_listed(app, client, store, setup, login):
    _settle(app, setup.loan_id, date(1950, 1, 1), status="written_off")
    with app.app_context():
        import io

        from portal.archive import services
        from tests.helpers.files import pdf_bytes
        archivist = setup.org.user("archivist")
        loan = db.session.get(Loan, setup.loan_id)
        doc = services.collect_document(archivist, borrower=loan.borrower, loan=loan,
                                        doc_type="write_off_approval", fileobj=io.BytesIO(pdf_bytes()),
                                        filename="核销审批书.pdf").document
        services.sort_document(archivist, doc)
        services.file_document(archivist, doc)
        services.archive_document(archivist, doc)
        db.session.commit()
        doc_id = doc.id
        assert "-Y-B1-" in doc.archive_number  # permanent retention in the archive number
    login(client, "archivist")
    list_id = _new_list(app, client, setup)
    response = _add(client, list_id, [doc_id])
    assert response.status_code == 422 and "kept permanently" in response.get_data(as_text=True)


def test_destruction_pages_by_role(app, client, local_store, login):
    make_archive_setup(app)
    login(client, "officer")  # a possible supervisor: reads lists, proposes none
    assert client.get("/archive/destruction").status_code == 200
    assert post(client, "/archive/destruction", {"appraisal": "x"}).status_code == 403
    auditor = app.test_client()
    login(auditor, "county_auditor")
    assert auditor.get("/archive/destruction").status_code == 200
    assert post(auditor, "/archive/destruction", {"appraisal": "x"}).status_code == 403


@pytest.mark.parametrize("status", ["active", "overdue"])
def test_open_loans_block_destruction_even_long_after(app, client, local_store, status, login):
    setup = make_archive_setup(app, status=status, disbursed_on=date(1980, 1, 1), maturity_on=date(1981, 1, 1))
    _volume, ids = archived_documents(app, setup)
    login(client, "archivist")
    list_id = _new_list(app, client, setup)
    assert _add(client, list_id, ids).status_code == 422
