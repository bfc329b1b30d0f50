"""A user sees only their institution's subtree: lists, detail pages, borrowers, ID numbers."""
import pytest

from portal.extensions import db


@pytest.fixture()
def loans(app, org, make_loan):
    """A loan in branch B1, one in B2 and one in E1 (province Q); their ids, and the first two's borrowers."""
    with app.app_context():
        mine = make_loan(org.inst("B1"), org.user("officer"), contract_no="B1-LOAN-1", borrower_name="王建国",
                         id_number="430181198001011234")
        other = make_loan(org.inst("B2"), org.user("officer2"), contract_no="B2-LOAN-1", borrower_name="李秀英")
        foreign = make_loan(org.inst("E1"), org.user("officer_q"), contract_no="E1-LOAN-1", borrower_name="赵大海")
        db.session.commit()
        return mine.id, other.id, foreign.id, mine.borrower_id, other.borrower_id


def test_branch_officer_sees_only_own_branch(app, client, org, login, loans):
    mine, other, foreign, my_borrower, other_borrower = loans
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


def test_filter_by_foreign_branch_reveals_nothing(app, client, org, login, loans):
    with app.app_context():
        b2_id = org.inst("B2").id
    login(client, "officer")
    page = client.get(f"/loans/?branch={b2_id}").get_data(as_text=True)
    assert "B2-LOAN-1" not in page and "B1-LOAN-1" not in page


def test_county_auditor_sees_both_branches_not_other_province(app, client, org, login, loans):
    mine, other, foreign, *_ = loans
    login(client, "county_auditor")
    listing = client.get("/loans/").get_data(as_text=True)
    assert "B1-LOAN-1" in listing and "B2-LOAN-1" in listing and "E1-LOAN-1" not in listing
    assert client.get(f"/loans/{other}").status_code == 200
    assert client.get(f"/loans/{foreign}").status_code == 404


def test_id_number_masked_for_roles_that_do_not_need_it(app, client, org, login, loans):
    mine, *_ = loans
    login(client, "auditor")
    page = client.get(f"/loans/{mine}").get_data(as_text=True)
    assert "430***********1234" in page and "430181198001011234" not in page
    client.get("/login")
    other = app.test_client()
    login(other, "officer")
    assert "430181198001011234" in other.get(f"/loans/{mine}").get_data(as_text=True)


def test_users_page_only_for_admin(app, client, org, login):
    login(client, "officer")
    assert client.get("/org/users").status_code == 403
    admin = app.test_client()
    login(admin, "admin")
    assert admin.get("/org/users").status_code == 200


def test_what_a_request_knows_of_the_tree_follows_every_change(app, org):
    """The subtree's ids and the province are looked up once a request (kept in the session),
    and forgotten the moment the tree changes: by the ORM, by SQL, or at the end of a
    transaction."""
    from sqlalchemy import select, text

    from portal.accounts.models import Institution
    from portal.accounts.scope import in_scope

    def visible(user):
        return set(db.session.execute(select(Institution.code).where(in_scope(Institution.id, user))).scalars())

    with app.app_context():
        user, county = org.user("county_director"), org.inst("C1")
        before = visible(user)
        assert "B1" in before and "E1" not in before
        db.session.add(Institution(code="B9", name="新开信用社", level="branch", parent_id=county.id,
                                   path=county.path + "B9/"))
        db.session.flush()
        assert visible(user) == before | {"B9"}
        # Not flushed yet: the memo steps aside, and the query's autoflush includes it.
        db.session.add(Institution(code="B7", name="待开信用社", level="branch", parent_id=county.id,
                                   path=county.path + "B7/"))
        assert visible(user) == before | {"B9", "B7"}
        db.session.execute(text("INSERT INTO institution (code, name, level, parent_id, path, rules_settings, "
                                "created_at) VALUES ('B8', '再开信用社', 'branch', :parent, :path, '{}', "
                                "CURRENT_TIMESTAMP)"), {"parent": county.id, "path": county.path + "B8/"})
        assert visible(user) == before | {"B9", "B7", "B8"}
        db.session.rollback()
        assert visible(user) == before
        assert org.inst("B1").province().code == county.province().code == org.inst("P").code


def test_the_tree_is_read_once_a_request(app, org):
    from sqlalchemy import event, select

    from portal.accounts.models import Institution
    from portal.accounts.scope import in_scope
    from portal.loans.models import Loan

    statements: list[str] = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        user, branch, province_code = org.user("county_director"), org.inst("B1"), org.inst("P").code
        assert user.institution.path and branch.path      # loaded before counting
        statements.clear()
        for _ in range(3):
            db.session.execute(select(Loan.id).where(in_scope(Loan.branch_id, user))).all()
            assert branch.province().code == province_code
        tree = [s for s in statements if "FROM institution" in s]
        assert len(tree) == 2, "\n---\n".join(tree)        # the subtree's ids once, the province once
        db.session.expunge_all()           # as verify does between batches: the province is read again
        assert org.inst("B2").province().code == province_code


def test_codes_differing_only_in_case_are_different_subtrees(app, client, org, login, make_loan):
    """Paths are matched by prefix with LIKE, which SQLite compares without case unless told
    otherwise: county "c1" must not fall inside county "C1"'s scope (nor on any page)."""
    from portal.accounts.services import create_institution, create_user

    with app.app_context():
        create_institution(None, "c1", "小写县联社", "county", "P")
        create_institution(None, "b9", "小写信用社", "branch", "c1")
        create_user(None, "lower_officer", "correct-horse-42", "b9", ["loan_officer"], display_name="lower")
        loan = make_loan(org.inst("b9"), contract_no="LOWER-CASE-1", borrower_name="钱小写")
        db.session.commit()
        loan_id, borrower_id = loan.id, loan.borrower_id
    login(client, "county_director")   # of C1
    assert "LOWER-CASE-1" not in client.get("/loans/").get_data(as_text=True)
    assert client.get(f"/loans/{loan_id}").status_code == 404
    assert client.get(f"/loans/borrowers/{borrower_id}").status_code == 404
    assert "小写信用社" not in client.get("/loans/").get_data(as_text=True)
