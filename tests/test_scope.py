"""A user sees only their institution's subtree: lists, detail pages, borrowers, ID numbers."""
from portal.extensions import db

from conftest import login, make_loan


def _loans(app, org):
    with app.app_context():
        mine = make_loan(org.inst("B1"), org.user("officer"), contract_no="B1-LOAN-1", borrower_name="王建国",
                         id_number="430181198001011234")
        other = make_loan(org.inst("B2"), org.user("officer2"), contract_no="B2-LOAN-1", borrower_name="李秀英")
        foreign = make_loan(org.inst("E1"), org.user("officer_q"), contract_no="E1-LOAN-1", borrower_name="赵大海")
        db.session.commit()
        return mine.id, other.id, foreign.id, mine.borrower_id, other.borrower_id


def test_branch_officer_sees_only_own_branch(app, client, org):
    mine, other, foreign, my_borrower, other_borrower = _loans(app, org)
    login(client, "officer")
    listing = client.get("/loans/").get_data(as_text=True)
    assert "B1-LOAN-1" in listing
    assert "B2-LOAN-1" not in listing and "E1-LOAN-1" not in listing
    assert client.get(f"/loans/{mine}").status_code == 200
    assert client.get(f"/loans/{other}").status_code == 404
    assert client.get(f"/loans/{foreign}").status_code == 404
    assert client.get(f"/loans/borrowers/{my_borrower}").status_code == 200
    assert client.get(f"/loans/borrowers/{other_borrower}").status_code == 404
    # Searching by the other branch's borrower name finds nothing either.
    assert "B2-LOAN-1" not in client.get("/loans/?q=李秀英").get_data(as_text=True)


def test_filter_by_foreign_branch_reveals_nothing(app, client, org):
    _loans(app, org)
    with app.app_context():
        b2_id = org.inst("B2").id
    login(client, "officer")
    page = client.get(f"/loans/?branch={b2_id}").get_data(as_text=True)
    assert "B2-LOAN-1" not in page and "B1-LOAN-1" not in page


def test_county_auditor_sees_both_branches_not_other_province(app, client, org):
    mine, other, foreign, *_ = _loans(app, org)
    login(client, "county_auditor")
    listing = client.get("/loans/").get_data(as_text=True)
    assert "B1-LOAN-1" in listing and "B2-LOAN-1" in listing and "E1-LOAN-1" not in listing
    assert client.get(f"/loans/{other}").status_code == 200
    assert client.get(f"/loans/{foreign}").status_code == 404


def test_id_number_masked_for_roles_that_do_not_need_it(app, client, org):
    mine, *_ = _loans(app, org)
    login(client, "auditor")
    page = client.get(f"/loans/{mine}").get_data(as_text=True)
    assert "430***********1234" in page and "430181198001011234" not in page
    client.get("/login")
    other = app.test_client()
    login(other, "officer")
    assert "430181198001011234" in other.get(f"/loans/{mine}").get_data(as_text=True)


def test_users_page_only_for_admin(app, client, org):
    login(client, "officer")
    assert client.get("/org/users").status_code == 403
    admin = app.test_client()
    login(admin, "admin")
    assert admin.get("/org/users").status_code == 200
