"""The `flask org` and `flask users` commands."""
import json

from portal.accounts.models import User
from portal.accounts.services import verify_password
from portal.audit_trail import AuditEvent
from portal.extensions import db


def test_build_a_tree_and_add_a_user(app, runner):
    assert runner.invoke(args=["org", "add-institution", "HN", "湖南省农村信用社联合社", "--level", "province",
                               "--plugin", "hunan"]).exit_code == 0
    assert runner.invoke(args=["org", "add-institution", "HN01", "浏阳农商银行", "--level", "county",
                               "--parent", "HN"]).exit_code == 0
    result = runner.invoke(args=["org", "add-institution", "HN0101", "集里支行", "--level", "branch", "--parent", "HN01"])
    assert result.exit_code == 0 and "/HN/HN01/HN0101/" in result.output
    result = runner.invoke(args=["users", "add", "zhangsan", "--role", "loan_officer", "--role", "archivist",
                                 "--institution", "HN0101", "--name", "张三"], input="s3cret-pass\n")
    assert result.exit_code == 0, result.output
    tree = json.loads(runner.invoke(args=["org", "list", "--json"]).output)
    assert [i["code"] for i in tree] == ["HN", "HN01", "HN0101"] and tree[0]["plugin"] == "hunan"
    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(username="zhangsan")).scalar_one()
        assert user.roles == {"loan_officer", "archivist"} and user.display_name == "张三"
        assert verify_password(user.password_hash, "s3cret-pass") and "s3cret" not in user.password_hash
        actions = db.session.execute(db.select(AuditEvent.action)).scalars().all()
        assert actions.count("institution.create") == 3 and "user.create" in actions


def test_refusals_change_nothing(app, runner):
    runner.invoke(args=["org", "add-institution", "HN", "湖南", "--level", "province"])
    cases = [
        ["org", "add-institution", "X1", "无上级", "--level", "branch"],
        ["org", "add-institution", "X2", "上级不存在", "--level", "county", "--parent", "NOPE"],
        ["org", "add-institution", "HN", "重复", "--level", "province"],
        ["org", "add-institution", "X3", "未知插件", "--level", "province", "--plugin", "atlantis"],
        ["org", "add-institution", "../x", "坏代码", "--level", "province"],
    ]
    for args in cases:
        result = runner.invoke(args=args)
        assert result.exit_code != 0, args
    result = runner.invoke(args=["users", "add", "lisi", "--role", "auditor", "--institution", "HN"], input="short\n")
    assert result.exit_code != 0 and "8" in result.output
    with app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(User)).scalar_one() == 0
        from portal.accounts.models import Institution
        assert db.session.execute(db.select(db.func.count()).select_from(Institution)).scalar_one() == 1
