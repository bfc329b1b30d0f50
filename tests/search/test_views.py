"""The search page: scope in results, counts and highlights; content matches only where the user
may read the content; malformed queries and odd filters answered with a message, never a 500."""
from __future__ import annotations

import re

from portal.extensions import db

from tests.helpers.files import docx_bytes

from .search_helpers import add_document, drain_all


def hits(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-document="(\d+)"', page)]


def total(page: str) -> int:
    match = re.search(r"(\d+) documents? found", page)
    assert match, "no total on the page"
    return int(match.group(1))


def two_branches(app, world) -> tuple[int, int]:
    b1 = add_document(app, world, docx_bytes("贷后检查：借款人挪用贷款资金购买货车，城关独有的话"), "检查.docx",
                      doc_type="inspection_report")
    b2 = add_document(app, world, docx_bytes("贷后检查：借款人挪用贷款资金偿还私人借款，河西独有的话"), "检查.docx",
                      branch="B2", doc_type="inspection_report")
    drain_all(app)
    return b1, b2


def test_an_officer_never_sees_another_branchs_document(app, world, client, login):
    b1, b2 = two_branches(app, world)
    login(client, "officer")
    page = client.get("/search/?q=挪用贷款资金").get_data(as_text=True)
    assert hits(page) == [b1] and total(page) == 1
    assert "河西独有" not in page and "私人借款" not in page and "李秀英" not in page
    assert re.search(r'data-type="inspection_report".*?<span class="badge bg-secondary">1</span>', page, re.S)
    # Naming the other branch's borrower, contract number or the other branch itself finds nothing.
    for query in ("李秀英", "HX2024-777", "私人借款"):
        assert total(client.get(f"/search/?q={query}").get_data(as_text=True)) == 0, query
    other_branch = world.org.user_ids and _institution_id(app, world, "B2")
    page = client.get(f"/search/?q=挪用&institution={other_branch}").get_data(as_text=True)
    assert hits(page) == [b1]          # an institution outside the scope is not a filter: ignored


def _institution_id(app, world, code: str) -> int:
    with app.app_context():
        return world.org.inst(code).id


def test_a_county_sees_its_branches_and_another_province_nothing(app, world, client, login):
    b1, b2 = two_branches(app, world)
    login(client, "county_archivist")
    page = client.get("/search/?q=挪用贷款资金").get_data(as_text=True)
    assert sorted(hits(page)) == sorted([b1, b2]) and total(page) == 2
    assert "<mark>挪用贷款资金</mark>" in page
    client.post("/logout", data={})
    with client.session_transaction() as session:
        session.clear()
    login(client, "officer_q")
    page = client.get("/search/?q=挪用贷款资金").get_data(as_text=True)
    assert hits(page) == [] and total(page) == 0


def test_archived_content_is_searched_only_by_those_who_may_read_it(app, world, client, login):
    from portal.archive.models import Document
    from portal.archive.services import archive_document, file_document, sort_document

    doc = add_document(app, world, docx_bytes("贷后检查：借款人挪用贷款资金"), "检查.docx", doc_type="inspection_report")
    with app.app_context():
        archivist = world.org.user("archivist")
        document = db.session.get(Document, doc)
        sort_document(archivist, document)
        file_document(archivist, document)
        archive_document(archivist, document)
        db.session.commit()
    drain_all(app)
    login(client, "officer")          # a loan officer reads archived documents only by lending
    page = client.get("/search/?q=挪用贷款资金").get_data(as_text=True)
    assert total(page) == 0
    page = client.get("/search/?q=王建国").get_data(as_text=True)     # the credit file's list: visible
    assert hits(page) == [doc] and "挪用" not in page
    with client.session_transaction() as session:
        session.clear()
    login(client, "director")         # a director reads them directly
    page = client.get("/search/?q=挪用贷款资金").get_data(as_text=True)
    assert hits(page) == [doc] and "<mark>挪用贷款资金</mark>" in page


def test_a_malformed_query_shows_a_message(app, world, client, login):
    login(client, "archivist")
    for query, message in (('"借款合同', "A quotation mark is not closed."),
                           ("-挪用", "a search cannot only exclude"),
                           ("借", "A single Chinese character is too short to search for")):
        response = client.get("/search/", query_string={"q": query})
        assert response.status_code == 200
        assert message in response.get_data(as_text=True)
    response = client.get("/search/?q=挪用&from=yesterday&to=2024-13-45&sort=nonsense&page=x&type=<b>")
    assert response.status_code == 200


def test_filters_sorting_and_the_search_box(app, world, client, login):
    b1, b2 = two_branches(app, world)
    contract = add_document(app, world, docx_bytes("借款合同，借款人挪用贷款资金的违约责任"), "合同.docx")
    drain_all(app)
    login(client, "county_archivist")
    home = client.get("/").get_data(as_text=True)
    assert 'action="/search/"' in home                              # the box in the navigation bar
    page = client.get("/search/?q=挪用&type=inspection_report").get_data(as_text=True)
    assert sorted(hits(page)) == sorted([b1, b2])
    b2_id = _institution_id(app, world, "B2")
    assert hits(client.get(f"/search/?q=挪用&institution={b2_id}").get_data(as_text=True)) == [b2]
    assert hits(client.get("/search/?q=挪用&sort=date_asc").get_data(as_text=True)) == [b1, b2, contract]
    assert hits(client.get("/search/?q=挪用&sort=date_desc").get_data(as_text=True)) == [contract, b2, b1]
    assert total(client.get("/search/?q=挪用&state=archived").get_data(as_text=True)) == 0
    assert total(client.get("/search/?q=挪用&from=2000-01-01&to=2000-12-31").get_data(as_text=True)) == 0


def test_who_may_search(app, world, client, login):
    assert client.get("/search/?q=借款").status_code == 302          # sign in first
    login(client, "admin")                                           # the operator sees no archive
    assert client.get("/search/?q=借款").status_code == 403


def _statements(app, client, url: str) -> tuple[str, int]:
    """The page, and how many SQL statements answering it took."""
    from sqlalchemy import event

    count = [0]

    def counter(*_args):
        count[0] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", counter)
    try:
        page = client.get(url).get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", counter)
    return page, count[0]


def test_a_results_page_takes_the_same_queries_however_many_hits(app, world, client, login):
    """Loans, borrowers, institutions and texts of the hits are read in one query per kind, not
    one per hit (a page of 20 hits once took 50 small queries)."""
    first = add_document(app, world, docx_bytes("贷后检查：借款人挪用贷款资金"), "检查.docx", doc_type="inspection_report")
    drain_all(app)
    login(client, "county_archivist")
    client.get("/search/?q=挪用贷款资金")                                   # warm caches (rules, dictionary)
    page, one_hit = _statements(app, client, "/search/?q=挪用贷款资金")
    assert hits(page) == [first]
    more = [add_document(app, world, docx_bytes(f"贷后检查{n}：借款人挪用贷款资金"), "检查.docx",
                         branch="B1" if n % 2 else "B2", doc_type="inspection_report") for n in range(5)]
    drain_all(app)
    page, six_hits = _statements(app, client, "/search/?q=挪用贷款资金")
    assert sorted(hits(page)) == sorted([first, *more])
    assert "李秀英" in page and "王建国" in page and page.count("<mark>挪用贷款资金</mark>") == 6
    assert six_hits == one_hit
    assert one_hit <= 12


def test_a_lending_opens_the_snippet_of_the_lent_document_only(app, world, client, login):
    """A loan officer sees the snippet of an archived document only while an issued digital
    lending covers it (decided for the whole page at once)."""
    from datetime import timedelta

    from portal.archive.models import Document, Lending, LendingState
    from portal.archive.services import archive_document, file_document, sort_document
    from portal.timeutil import local_today

    docs = [add_document(app, world, docx_bytes(f"贷后检查：借款人挪用贷款资金，第{n}份"), "检查.docx",
                         doc_type="inspection_report") for n in range(2)]
    with app.app_context():
        archivist = world.org.user("archivist")
        for doc_id in docs:
            document = db.session.get(Document, doc_id)
            sort_document(archivist, document)
            file_document(archivist, document)
            archive_document(archivist, document)
        officer = world.org.user("officer")
        lending = Lending(institution_id=document.institution_id, volume_id=document.volume_id,
                          requester_id=officer.id, state=LendingState.ISSUED.value, medium="digital",
                          reason="复核", days=3, due_on=local_today() + timedelta(days=3))
        lending.documents.append(db.session.get(Document, docs[0]))
        db.session.add(lending)
        db.session.commit()
    drain_all(app)
    login(client, "officer")
    page = client.get("/search/?q=王建国").get_data(as_text=True)
    assert sorted(hits(page)) == sorted(docs)
    assert page.count('class="small xd-snippet"') == 0               # the name is no text match
    page = client.get("/search/?q=挪用贷款资金").get_data(as_text=True)
    assert hits(page) == [docs[0]] and "第0份" in page and "第1份" not in page
