"""Fixity on the auditor's page: an altered object shows up as a failure (from the button, the
auditor's command or a full `flask archive verify`), clears once it is verified clean again,
and stays within the auditor's subtree."""
from __future__ import annotations

import io
import json
import re

import pytest
from sqlalchemy import func, select

from portal.archive.models import Document, FixityRun
from portal.audit_trail import AuditEvent
from portal.extensions import db

from tests.helpers.files import pdf_bytes


@pytest.fixture()
def stored_world(app, make_org, make_loan):
    """``stored_world()``: two documents with objects in B1, one in B2; their ids and keys."""
    def make() -> dict:
        """Two documents with objects in B1, one in B2, collected through the archive's service."""
        from portal.archive.services import collect_document
        with app.app_context():
            org = make_org()
            ids = {"org": org}
            for name, branch, officer in (("b1", "B1", "officer"), ("b2", "B2", "officer2")):
                loan = make_loan(org.inst(branch), org.user(officer))
                docs = []
                for code in (["loan_contract", "loan_receipt"] if name == "b1" else ["loan_contract"]):
                    docs.append(collect_document(org.user(officer), borrower=loan.borrower, loan=loan, doc_type=code,
                                                 fileobj=io.BytesIO(pdf_bytes()), filename=f"{code}.pdf").document)
                db.session.commit()
                ids[name] = [(d.id, d.object_key) for d in docs]
            ids["B1"], ids["B2"], ids["C1"] = org.inst("B1").id, org.inst("B2").id, org.inst("C1").id
            return ids
    return make


@pytest.fixture()
def verify(csrf_token):
    """``verify(client, institution_id)``: press the auditor's verify button."""
    def make(client, institution_id: int):
        return client.post("/audit/fixity/verify", data={"institution": institution_id,
                                                         "csrf_token": csrf_token(client, "/audit/fixity")})
    return make


def failing(html: str) -> list[str]:
    return re.findall(r'<tr class="table-danger" data-kind="(\w+)" data-document="(\d+)"', html)


def test_an_altered_object_shows_as_a_fixity_failure(app, client, local_store, login, stored_world, verify):
    world = stored_world()
    (doc1, key1), (doc2, _k2) = world["b1"]
    login(client, "county_auditor")
    page = client.get(f"/audit/fixity?institution={world['B1']}").get_data(as_text=True)
    assert 'id="never-verified">2<' in page and failing(page) == []

    response = verify(client, world["B1"])
    assert response.status_code == 303
    with app.app_context():
        run = db.session.execute(select(FixityRun).order_by(FixityRun.id.desc())).scalars().first()
        assert run.institution_id == world["B1"] and run.ok and run.objects_checked == 2
        assert db.session.get(Document, doc1).last_verified_at is not None
        event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "audit.fixity_verify")).scalar_one()
        assert event.actor_name == "county_auditor" and event.object_id == str(run.id)

    original = (local_store.root / key1).read_bytes()
    (local_store.root / key1).write_bytes(original + b"% altered\n")
    verify(client, world["B1"])
    page = client.get(f"/audit/fixity?institution={world['B1']}").get_data(as_text=True)
    assert failing(page) == [("mismatch", str(doc1))]
    assert 'id="failing-count">1<' in page
    # The county sees it; the other branch does not.
    county = client.get(f"/audit/fixity?institution={world['C1']}").get_data(as_text=True)
    assert failing(county) == [("mismatch", str(doc1))]
    assert failing(client.get(f"/audit/fixity?institution={world['B2']}").get_data(as_text=True)) == []
    # Verified clean again: the failure is gone.
    (local_store.root / key1).write_bytes(original)
    verify(client, world["B1"])
    assert failing(client.get(f"/audit/fixity?institution={world['B1']}").get_data(as_text=True)) == []


def test_a_full_archive_verify_run_counts_too(app, client, runner, local_store, login, stored_world):
    world = stored_world()
    doc, key = world["b2"][0]
    (local_store.root / key).unlink()
    result = runner.invoke(args=["archive", "verify", "--quiet"])
    assert result.exit_code == 1
    login(client, "county_auditor")
    page = client.get(f"/audit/fixity?institution={world['B2']}").get_data(as_text=True)
    assert failing(page) == [("missing", str(doc))]
    assert "Object missing from the store" in page
    # The auditor's command says the same, and exits 1.
    out = runner.invoke(args=["audit", "fixity", "--institution", "C1", "--json"])
    assert out.exit_code == 1, out.output
    data = json.loads(out.output)
    assert [f["document_id"] for f in data["failures"]] == [doc]
    clean = runner.invoke(args=["audit", "fixity", "--institution", "B1", "--verify"])
    assert clean.exit_code == 0, clean.output
    assert "2 objects" in clean.output and "No object is failing" in clean.output


def test_when_each_object_was_last_verified(app, client, local_store, login, stored_world, verify):
    world = stored_world()
    login(client, "county_auditor")
    verify(client, world["B1"])
    page = client.get(f"/audit/fixity/objects?institution={world['C1']}").get_data(as_text=True)
    rows = re.findall(r'<tr data-document="(\d+)">.*?<td>([^<]*)</td></tr>', page, re.S)
    assert [int(d) for d, _v in rows][0] == world["b2"][0][0]               # never verified comes first
    assert dict(rows)[str(world["b2"][0][0])] == "never"
    assert dict(rows)[str(world["b1"][0][0])] != "never"


def test_who_may_press_the_button(app, client, local_store, monkeypatch, login, stored_world, verify):
    world = stored_world()
    login(client, "officer")
    assert client.get("/audit/fixity").status_code == 403
    assert verify(client, world["B1"]).status_code == 403
    other = app.test_client()
    login(other, "auditor")                                                  # auditor of B1
    assert verify(other, world["B2"]).status_code == 404
    from portal.auditing import fixity
    monkeypatch.setattr(fixity, "MAX_BYTES_IN_REQUEST", 10)
    response = verify(other, world["B1"])
    assert response.status_code == 422 and "flask audit fixity --institution B1 --verify" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(FixityRun)).scalar_one() == 0
