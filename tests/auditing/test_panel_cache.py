"""The dashboard panel cache: a change to a loan or a document shows on the next view; a panel
from the cache says how old its figures are; changes elsewhere keep it; writes the data
versions cannot see are bounded by the cache's age and shown with their time."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal

from markupsafe import Markup
from sqlalchemy import select, text, update

from portal import kept
from portal.auditing.dashboards import Panel, build_dashboard, decode_panel, encode_panel
from portal.kept import DataVersion, PanelCacheEntry
from portal.extensions import db
from portal.loans.models import Loan

from .auditing_helpers import add_doc

AS_OF = "Figures as of"


def panel_html(html: str, key: str) -> str:
    """The card of one panel."""
    start = html.index(f'id="panel-{key}"')
    end = html.find('id="panel-', start + 1)
    return html[start:end if end > 0 else len(html)]


def rows_of(card: str) -> list[list[str]]:
    body = card.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL)]


def dashboard(client) -> str:
    response = client.get("/audit/dashboard")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def versions(app) -> dict[int, int]:
    with app.app_context():
        return dict(db.session.execute(select(DataVersion.institution_id, DataVersion.version)).all())


def test_a_new_document_shows_on_the_next_view(app, client, known_gaps, login):
    login(client, "county_auditor")
    first = panel_html(dashboard(client), "completeness")
    assert rows_of(first) == [["城关信用社", "3", "1", "33.3"], ["河西信用社", "4", "2", "50.0"]]
    assert AS_OF not in first                                   # built for this view
    again = panel_html(dashboard(client), "completeness")
    assert AS_OF in again and rows_of(again) == rows_of(first)  # kept, and says so
    with app.app_context():                                     # L5's missing first visit arrives
        add_doc(db.session.get(Loan, known_gaps.loans["L5"]), "first_visit")
        db.session.commit()
    after = panel_html(dashboard(client), "completeness")
    assert rows_of(after) == [["城关信用社", "3", "1", "33.3"], ["河西信用社", "4", "3", "75.0"]]
    assert AS_OF not in after


def test_a_loan_change_shows_on_the_dashboard_and_the_home_page(app, client, known_gaps, login):
    login(client, "director")
    dashboard(client)
    client.get("/")
    home = client.get("/").get_data(as_text=True)
    assert AS_OF in panel_html(dashboard(client), "risk_classes") and 'id="summary-figures-at"' in home
    assert re.search(r'id="stat-overdue">0<', home)
    with app.app_context():                                     # L1 falls 40 days overdue
        loan = db.session.get(Loan, known_gaps.loans["L1"])
        loan.status, loan.days_past_due, loan.risk_class = "overdue", 40, "special_mention"
        db.session.commit()
    card = panel_html(dashboard(client), "risk_classes")
    assert AS_OF not in card
    assert dict((r[0], r[1]) for r in rows_of(card))["Special mention"] == "1"
    home = client.get("/").get_data(as_text=True)
    assert re.search(r'id="stat-overdue">1<', home) and 'id="summary-figures-at"' not in home


def test_changes_elsewhere_and_sign_ins_keep_the_cache(app, client, known_gaps, login):
    login(client, "officer")                                    # B1
    dashboard(client)
    with app.app_context():                                     # a loan of B2 changes
        db.session.get(Loan, known_gaps.loans["L6"]).risk_class = "substandard"
        db.session.commit()
    other = app.test_client()
    login(other, "director2")                                   # someone signs in
    assert AS_OF in panel_html(dashboard(client), "risk_classes")   # B1's panels are still good
    county = app.test_client()
    login(county, "county_auditor")
    card = panel_html(dashboard(county), "risk_classes")       # C1's include B2: built afresh
    assert AS_OF not in card and dict((r[0], r[1]) for r in rows_of(card))["Substandard"] == "1"


def test_rolled_back_changes_raise_no_version_and_moves_raise_both_branches(app, known_gaps):
    with app.app_context():
        before = versions(app)
        db.session.get(Loan, known_gaps.loans["L1"]).risk_class = "loss"
        db.session.flush()
        db.session.rollback()
        assert versions(app) == before
        b1, b2 = known_gaps.org.inst("B1").id, known_gaps.org.inst("B2").id
        db.session.get(Loan, known_gaps.loans["L1"]).branch_id = b2
        db.session.commit()
        after = versions(app)
        assert after[b1] == before[b1] + 1 and after[b2] == before[b2] + 1
        assert after.get(0) == before.get(0)                    # nothing else was touched


def test_changes_before_a_rolled_back_savepoint_still_count(app, known_gaps):
    with app.app_context():
        b1 = known_gaps.org.inst("B1").id
        before = versions(app)
        db.session.get(Loan, known_gaps.loans["L1"]).risk_class = "doubtful"
        db.session.flush()
        savepoint = db.session.begin_nested()
        db.session.get(Loan, known_gaps.loans["L2"]).risk_class = "loss"
        db.session.flush()
        savepoint.rollback()
        db.session.commit()
        assert db.session.get(Loan, known_gaps.loans["L1"]).risk_class == "doubtful"
        assert versions(app)[b1] == before[b1] + 1


def test_bulk_statements_and_sql_text_raise_every_panel(app, known_gaps):
    with app.app_context():
        county = known_gaps.org.inst("C1")
        everywhere = versions(app).get(0, 0)
        start = kept.fingerprint(county)
        db.session.execute(update(Loan).where(Loan.id == known_gaps.loans["L1"]).values(days_past_due=3))
        db.session.commit()
        bulk = kept.fingerprint(county)
        db.session.execute(text("UPDATE loan SET days_past_due = 4 WHERE id = :id"), {"id": known_gaps.loans["L1"]})
        db.session.commit()
        assert len({start, bulk, kept.fingerprint(county)}) == 3
        assert versions(app)[0] == everywhere + 2


def test_unseen_writes_are_shown_with_their_time_until_the_cache_expires(app, client, known_gaps, login):
    login(client, "director")
    assert rows_of(panel_html(dashboard(client), "completeness")) == [["城关信用社", "3", "1", "33.3"]]
    with app.app_context(), db.engine.begin() as conn:         # SQL on a bare connection: no version raised
        conn.execute(text("DELETE FROM archive_document WHERE loan_id = :id"), {"id": known_gaps.loans["L1"]})
    stale = panel_html(dashboard(client), "completeness")
    assert rows_of(stale) == [["城关信用社", "3", "1", "33.3"]]
    assert re.search(r"Figures as of \d\d:\d\d", stale)        # the old figures say how old they are
    with app.app_context():                                     # older than XINDANG_DASHBOARD_CACHE_SECONDS
        age = timedelta(seconds=app.config["XINDANG_DASHBOARD_CACHE_SECONDS"] + 1)
        for entry in db.session.execute(select(PanelCacheEntry)).scalars():
            entry.computed_at -= age
        db.session.commit()
    fresh = panel_html(dashboard(client), "completeness")
    assert rows_of(fresh) == [["城关信用社", "3", "0", "0.0"]] and AS_OF not in fresh


def test_no_cache_when_switched_off(app, client, known_gaps, monkeypatch, login):
    monkeypatch.setitem(app.config, "XINDANG_DASHBOARD_CACHE_SECONDS", 0)
    login(client, "county_auditor")
    dashboard(client)
    assert AS_OF not in dashboard(client)
    assert 'id="summary-figures-at"' not in client.get("/").get_data(as_text=True)


def chart(svg) -> str:
    """The SVG without pygal's random chart id."""
    return re.sub(r"chart-[0-9a-f-]{36}", "chart-id", str(svg))


def test_kept_panels_are_the_built_ones(app, known_gaps):
    with app.test_request_context():
        union_admin, province = known_gaps.org.user("union_admin"), known_gaps.org.inst("P")
        fresh = build_dashboard(union_admin, province)
        build_dashboard(union_admin, province, cached=True)
        kept = build_dashboard(union_admin, province, cached=True)
        assert [p.key for p in kept] == [p.key for p in fresh] and all(p.figures_at for p in kept)
        for a, b in zip(fresh, kept):
            assert (a.title, chart(a.svg), a.headers, a.rows, a.note, a.link) == \
                   (b.title, chart(b.svg), b.headers, b.rows, b.note, b.link)
            assert [type(v) for row in a.rows for v in row] == [type(v) for row in b.rows for v in row]


def test_every_cell_type_survives_the_cache():
    panel = Panel("x", "标题", Markup("<svg></svg>"), ["A", "B"],
                  [["名", 3, Decimal("33.3"), None, date(2026, 1, 2), datetime(2026, 1, 2, 3, 4, 5), Markup("<b>x</b>")]],
                  note="说明", link="auditing.completeness")
    back = decode_panel(encode_panel(panel))
    assert back == panel and isinstance(back.svg, Markup) and isinstance(back.rows[0][6], Markup)
    try:
        encode_panel(Panel("y", "t", rows=[[object()]]))
    except TypeError as exc:
        assert "cannot be kept" in str(exc)
    else:
        raise AssertionError("an unknown cell type was kept")
