"""Two provincial unions on different plugins in one database: each gets its own answers, its
own settings, its own rules page; and ``flask rules list --json`` shows them."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from portal.rules.services import update_union_settings
from portal.audit_trail import AuditEvent
from portal.extensions import db
from portal.loans.services import loan_facts
from portal.rules.lookup import rules_for


@pytest.fixture()
def unions(app, make_loan, make_org):
    """Province P on hunan, province Q on shandong, and a 20万元 farm credit loan in each."""
    with app.app_context():
        org = make_org(plugin="hunan", other_plugin="shandong")
        make_loan(org.inst("B1"), org.user("officer"), contract_no="HT-P-1", amount_fen=20_000_000,
                  balance_fen=20_000_000)
        make_loan(org.inst("E1"), org.user("officer_q"), contract_no="HT-Q-1", amount_fen=20_000_000,
                  balance_fen=20_000_000)
        db.session.commit()
    return org


def facts_of(contract_no: str):
    from portal.loans.models import Loan
    return loan_facts(db.session.execute(select(Loan).filter_by(contract_no=contract_no)).scalar_one())


def province(code: str):
    from portal.accounts.models import Institution
    return db.session.execute(select(Institution).filter_by(code=code)).scalar_one()


def test_each_union_answers_with_its_own_plugin(app, unions):
    with app.app_context():
        hunan, shandong = rules_for(unions.inst("B1")), rules_for(unions.inst("E1"))
        assert (hunan.plugin_name, shandong.plugin_name) == ("hunan", "shandong")
        same_loan = facts_of("HT-P-1")
        # 20万元: within Hunan's county amount, above the Shandong director's authority.
        assert hunan.inspection_escalation(same_loan).required is False
        escalated = shandong.inspection_escalation(same_loan)
        assert (escalated.required, escalated.department) == (True, "风险管理部")
        assert len(hunan.responsibility_roles(same_loan).primary) == 1
        assert len(shandong.responsibility_roles(same_loan).primary) == 2
        assert "account_monitoring_record" in hunan.required_documents(same_loan, "post_loan")
        assert "account_monitoring_record" not in shandong.required_documents(same_loan, "post_loan")
        assert "loan_certificate" in shandong.required_documents(same_loan, "application")
        assert "loan_certificate" not in hunan.required_documents(same_loan, "application")


def test_a_setting_changes_only_its_own_unions_answer(app, unions):
    with app.app_context():
        p_loan, q_loan = facts_of("HT-P-1"), facts_of("HT-Q-1")
        before_p = rules_for(unions.inst("B1")).inspection_escalation(p_loan)
        changes = update_union_settings(unions.user("q_union_admin"), province("Q"),
                                        {"director_authority_limit_yuan": "300000"})
        db.session.commit()
        assert changes == {"director_authority_limit_yuan": [None, 300000]}
    with app.app_context():
        assert rules_for(unions.inst("E1")).inspection_escalation(q_loan).required is False
        assert rules_for(unions.inst("E1")).settings["director_authority_limit_yuan"] == 300000
        assert rules_for(unions.inst("B1")).inspection_escalation(p_loan) == before_p
        event = db.session.execute(select(AuditEvent).filter_by(action="rules.update_settings")).scalar_one()
        assert event.object_id == "Q"


def test_a_baseline_setting_is_per_union_too(app, unions):
    with app.app_context():
        update_union_settings(unions.user("union_admin"), province("P"), {"routine_interval_days_a_bbb": 30})
        db.session.commit()
    with app.app_context():
        p_loan = facts_of("HT-P-1")             # rating A
        assert rules_for(unions.inst("B1")).routine_inspection_interval(p_loan) == 30
        assert rules_for(unions.inst("E1")).routine_inspection_interval(p_loan) == 90


# --- the union's rules page ---------------------------------------------------------------

def saved(app, code: str):
    with app.app_context():
        p = province(code)
        return p.rules_plugin, dict(p.rules_settings or {})


def test_union_admin_enables_a_plugin_and_saves_a_setting(app, client, unions, csrf_token, login):
    login(client, "union_admin")
    page = client.get("/rules/P")
    assert page.status_code == 200 and "hunan" in page.get_data(as_text=True)
    token = csrf_token(client, "/rules/P")
    response = client.post("/rules/P/plugin", data={"plugin": "template", "csrf_token": token})
    assert response.status_code == 302
    assert saved(app, "P")[0] == "template"
    assert saved(app, "Q")[0] == "shandong"
    response = client.post("/rules/P/settings", data={"city_escalation_threshold_yuan": "200000",
                                                      "csrf_token": token})
    assert response.status_code == 302
    assert saved(app, "P")[1] == {"city_escalation_threshold_yuan": 200_000}
    page = client.get("/rules/P").get_data(as_text=True)
    assert 'id="enabled-plugin">template<' in page and 'value="200000"' in page
    with app.app_context():
        assert rules_for(unions.inst("B1")).inspection_escalation(facts_of("HT-P-1")).level == "city"


def test_wrong_type_is_refused_with_422_naming_the_setting_and_saves_nothing(app, client, unions, csrf_token, login):
    login(client, "union_admin")
    token = csrf_token(client, "/rules/P")
    response = client.post("/rules/P/settings", data={
        "escalation_threshold_yuan": "lots", "routine_interval_days_low": "30", "csrf_token": token})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "escalation_threshold_yuan" in text and "lots" in text
    assert saved(app, "P") == ("hunan", {})
    with app.app_context():
        assert db.session.execute(select(AuditEvent).filter_by(action="rules.update_settings")).first() is None


def test_a_laxer_classification_floor_is_refused(app, client, unions, csrf_token, login):
    login(client, "union_admin")
    token = csrf_token(client, "/rules/P")
    response = client.post("/rules/P/settings", data={"substandard_after_dpd": "120", "csrf_token": token})
    assert response.status_code == 422 and "substandard_after_dpd" in response.get_data(as_text=True)
    assert saved(app, "P") == ("hunan", {})


def test_another_unions_admin_gets_404(app, client, unions, csrf_token, login):
    login(client, "q_union_admin")
    assert client.get("/rules/Q").status_code == 200
    token = csrf_token(client, "/rules/Q")
    assert client.get("/rules/P").status_code == 404
    assert client.post("/rules/P/settings", data={"routine_interval_days_low": "30",
                                                  "csrf_token": token}).status_code == 404
    assert client.post("/rules/P/plugin", data={"plugin": "template", "csrf_token": token}).status_code == 404
    assert saved(app, "P") == ("hunan", {})


def test_a_loan_officer_may_read_but_not_post(app, client, unions, csrf_token, login):
    login(client, "officer")
    page = client.get("/rules/P")
    assert page.status_code == 200 and 'id="settings-form"' in page.get_data(as_text=True)
    token = csrf_token(client, "/")
    assert client.post("/rules/P/settings", data={"routine_interval_days_low": "30",
                                                  "csrf_token": token}).status_code == 403
    assert client.post("/rules/P/plugin", data={"plugin": "template", "csrf_token": token}).status_code == 403
    assert saved(app, "P") == ("hunan", {})


# --- flask rules list --json ----------------------------------------------------------------

def test_cli_lists_unions_plugins_and_hooks(app, runner, unions):
    with app.app_context():
        update_union_settings(unions.user("q_union_admin"), province("Q"), {"director_authority_limit_yuan": 200000})
        db.session.commit()
    result = runner.invoke(args=["rules", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["union"]: row for row in json.loads(result.output)["unions"]}
    assert set(rows) == {"P", "Q"}
    assert rows["P"]["plugin"] == "hunan" and rows["Q"]["plugin"] == "shandong"
    assert "xindang_archive_number" in rows["P"]["hooks"]
    assert "xindang_archive_number" not in rows["Q"]["hooks"]
    assert rows["Q"]["hooks"] == ["xindang_default_settings", "xindang_document_types",
                                  "xindang_inspection_escalation", "xindang_required_documents",
                                  "xindang_responsibility_roles"]
    assert rows["Q"]["settings_changed"] == ["director_authority_limit_yuan"]
    assert rows["Q"]["settings"]["director_authority_limit_yuan"] == 200000
    assert rows["P"]["settings"]["escalation_threshold_yuan"] == 500000


def test_cli_plain_text_names_the_hooks(runner, unions):
    result = runner.invoke(args=["rules", "list"])
    assert result.exit_code == 0
    assert "P 测试省农村信用社联合社: plugin=hunan" in result.output
    assert "    xindang_responsibility_roles" in result.output
