"""Completeness benchmark: a union-wide audit against one hand-written SQL aggregate.

Generates one union (baseline rules; 5 counties × 10 branches) with ``--loans`` loans (default
50,000) and ``--documents`` documents (default 500,000) in their credit files — most required
documents present, some missing, some only discarded or destroyed, some filed for the whole
credit file (no loan), plus inspection reports and notices the checklist does not require — on
SQLite (a temporary file) and on PostgreSQL (``--pg-url``, a schema of its own, dropped after).

Then, in one run, ``--runs`` times alternating (after one warm-up of each):

- floor: one hand-written SQL statement that encodes the baseline checklist as SQL and returns
  files, complete files and missing documents per branch (the faster of two formulations, both
  timed: LEFT JOIN against the held set, and NOT EXISTS probes);
- audit: ``portal.auditing.completeness.audit_completeness(union)`` — what the completeness page,
  ``flask audit completeness`` and the reports call: the loans, the held document types and the
  plugin's checklist per combination of loan facts, every loan's gaps and the totals per branch,
  county and union.

Both must give the same numbers for every branch (checked). Figures: median seconds, ratio of
the audit to the floor. Goals: audit ≤ 2 × floor, and under 5 s.

    .venv/bin/python bench/completeness.py [--db sqlite|postgresql|both] [--runs 7]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
COUNTIES, BRANCHES_PER_COUNTY = 5, 10
AS_OF = date(2026, 6, 30)
LIVE = ("archived", "collected", "filed", "sorted")

PRODUCTS = [("farm_credit", "credit", 30), ("joint_guarantee", "joint", 12), ("multi_guarantee", "guarantee", 6),
            ("mortgage", "mortgage", 14), ("pledge", "pledge", 5), ("guaranteed", "guarantee", 10),
            ("working_capital", "mortgage", 8), ("fixed_assets", "mortgage", 5), ("consumer", "credit", 10)]
EXTRA_TYPES = ["inspection_report", "repayment_notice", "overdue_notice", "risk_classification", "warning_record",
               "review_opinion", "disbursement_voucher", "repayment_record", "evaluation"]

# The baseline checklist (portal/rules/defaults.py ``required_for``) written out as SQL.
FLOOR_LOANS = """
WITH l AS (
  SELECT loan.id, loan.branch_id, loan.borrower_id, loan.guarantee_type, loan.status, loan.payment_method,
         loan.disbursed_on, borrower.kind
  FROM loan JOIN borrower ON borrower.id = loan.borrower_id
  WHERE loan.branch_id IN (SELECT id FROM institution WHERE path LIKE :prefix)
), req(loan_id, borrower_id, doc_type) AS (
  SELECT id, borrower_id, 'loan_application' FROM l
  UNION ALL SELECT id, borrower_id, 'id_documents' FROM l
  UNION ALL SELECT id, borrower_id, 'credit_rating' FROM l WHERE kind = 'individual'
  UNION ALL SELECT id, borrower_id, 'investigation_report' FROM l
  UNION ALL SELECT id, borrower_id, 'approval' FROM l
  UNION ALL SELECT id, borrower_id, 'loan_contract' FROM l
  UNION ALL SELECT id, borrower_id, 'loan_receipt' FROM l
  UNION ALL SELECT id, borrower_id, 'guarantee_contract' FROM l WHERE guarantee_type IN ('guarantee', 'joint')
  UNION ALL SELECT id, borrower_id, 'mortgage_contract' FROM l WHERE guarantee_type = 'mortgage'
  UNION ALL SELECT id, borrower_id, 'collateral_certificate' FROM l WHERE guarantee_type = 'mortgage'
  UNION ALL SELECT id, borrower_id, 'pledge_contract' FROM l WHERE guarantee_type = 'pledge'
  UNION ALL SELECT id, borrower_id, 'first_visit' FROM l
    WHERE (payment_method = 'self' AND disbursed_on <= :cutoff_self)
       OR (payment_method <> 'self' AND disbursed_on <= :cutoff_entrusted)
  UNION ALL SELECT id, borrower_id, 'settlement_certificate' FROM l WHERE status = 'settled'
  UNION ALL SELECT id, borrower_id, 'write_off_application' FROM l WHERE status = 'written_off'
  UNION ALL SELECT id, borrower_id, 'write_off_approval' FROM l WHERE status = 'written_off'
  UNION ALL SELECT id, borrower_id, 'write_off_evidence' FROM l WHERE status = 'written_off'
)"""

FLOOR_JOIN = FLOOR_LOANS + """,
held AS (
  SELECT DISTINCT loan_id, doc_type FROM archive_document
  WHERE loan_id IS NOT NULL AND state IN ('archived', 'collected', 'filed', 'sorted')
), held_file AS (
  SELECT DISTINCT borrower_id, doc_type FROM archive_document
  WHERE loan_id IS NULL AND state IN ('archived', 'collected', 'filed', 'sorted')
), missing AS (
  SELECT req.loan_id, count(*) AS n FROM req
  LEFT JOIN held ON held.loan_id = req.loan_id AND held.doc_type = req.doc_type
  LEFT JOIN held_file ON held_file.borrower_id = req.borrower_id AND held_file.doc_type = req.doc_type
  WHERE held.loan_id IS NULL AND held_file.borrower_id IS NULL
  GROUP BY req.loan_id
)
SELECT l.branch_id, count(*) AS files, sum(CASE WHEN missing.n IS NULL THEN 1 ELSE 0 END) AS complete,
       coalesce(sum(missing.n), 0) AS missing_documents
FROM l LEFT JOIN missing ON missing.loan_id = l.id
GROUP BY l.branch_id"""

FLOOR_EXISTS = FLOOR_LOANS + """,
missing AS (
  SELECT req.loan_id, count(*) AS n FROM req
  WHERE NOT EXISTS (SELECT 1 FROM archive_document d WHERE d.loan_id = req.loan_id AND d.doc_type = req.doc_type
                    AND d.state IN ('archived', 'collected', 'filed', 'sorted'))
    AND NOT EXISTS (SELECT 1 FROM archive_document d WHERE d.loan_id IS NULL AND d.borrower_id = req.borrower_id
                    AND d.doc_type = req.doc_type AND d.state IN ('archived', 'collected', 'filed', 'sorted'))
  GROUP BY req.loan_id
)
SELECT l.branch_id, count(*) AS files, sum(CASE WHEN missing.n IS NULL THEN 1 ELSE 0 END) AS complete,
       coalesce(sum(missing.n), 0) AS missing_documents
FROM l LEFT JOIN missing ON missing.loan_id = l.id
GROUP BY l.branch_id"""


# --- data ------------------------------------------------------------------------------------

def required_now(kind: str, guarantee: str, status: str, payment: str, disbursed: date) -> list[str]:
    from portal.rules.defaults import required_for
    from portal.rules.types import LoanFacts
    facts = LoanFacts("X", "p", guarantee, 1, 1, payment, disbursed, disbursed, status, borrower_kind=kind)
    docs = required_for(facts, "application") + required_for(facts, "disbursement")
    if disbursed + timedelta(days=3 if payment == "self" else 7) <= AS_OF:
        docs += required_for(facts, "post_loan")
    docs += required_for(facts, "settlement") + required_for(facts, "write_off")
    return docs


STAGE_OF = {}


def generate(loans: int, documents: int, seed: int = 20261129):
    """Rows for every table, as lists of dicts (ids assigned here)."""
    from portal.rules.defaults import DOCUMENT_TYPES
    STAGE_OF.update({d.code: d.stage for d in DOCUMENT_TYPES})
    rng = random.Random(seed)
    institutions = [dict(id=1, code="BENCH", name="基准省联社", level="province", parent_id=None, path="/BENCH/",
                         rules_plugin=None, rules_settings={})]
    branch_ids = []
    next_id = 2
    for c in range(COUNTIES):
        county_id, ccode = next_id, f"BC{c + 1:02d}"
        institutions.append(dict(id=county_id, code=ccode, name=f"基准县联社{c + 1}", level="county",
                                 parent_id=1, path=f"/BENCH/{ccode}/", rules_plugin=None, rules_settings={}))
        next_id += 1
        for b in range(BRANCHES_PER_COUNTY):
            bcode = f"{ccode}B{b + 1:02d}"
            institutions.append(dict(id=next_id, code=bcode, name=f"基准信用社{c + 1}-{b + 1}", level="branch",
                                     parent_id=county_id, path=f"/BENCH/{ccode}/{bcode}/", rules_plugin=None,
                                     rules_settings={}))
            branch_ids.append(next_id)
            next_id += 1
    borrowers, volumes, loan_rows, docs = [], [], [], []
    per_loan_target = documents / loans
    weights = [w for _p, _g, w in PRODUCTS]
    borrower_of_branch: dict[int, list[int]] = {b: [] for b in branch_ids}
    for loan_id in range(1, loans + 1):
        branch = branch_ids[(loan_id - 1) % len(branch_ids)]
        if borrower_of_branch[branch] and rng.random() < 0.2:   # a second loan of an existing borrower
            borrower_id = rng.choice(borrower_of_branch[branch])
        else:
            borrower_id = len(borrowers) + 1
            kind = "individual" if rng.random() < 0.85 else "enterprise"
            borrowers.append(dict(id=borrower_id, kind=kind, name=f"借款人{borrower_id}",
                                  id_number=f"4301{borrower_id:014d}", credit_rating=rng.choice(["AA", "A", "BBB", "BB", "unrated"]),
                                  institution_id=branch))
            volumes.append(dict(id=borrower_id, borrower_id=borrower_id, institution_id=branch,
                                title=f"借款人{borrower_id} 信贷档案"))
            borrower_of_branch[branch].append(borrower_id)
        product, guarantee, _w = rng.choices(PRODUCTS, weights=weights)[0]
        disbursed = AS_OF - timedelta(days=rng.randint(0, 1000))
        roll = rng.random()
        status = "active" if roll < 0.75 else "overdue" if roll < 0.85 else "settled" if roll < 0.97 else "written_off"
        dpd = rng.randint(1, 400) if status in ("overdue", "written_off") else 0
        risk = ("normal" if dpd == 0 else "special_mention" if dpd <= 90 else "substandard" if dpd <= 270
                else "doubtful" if dpd <= 360 else "loss")
        payment = "self" if rng.random() < 0.3 else "entrusted"
        amount = rng.randint(10, 500) * 1_000_00
        loan_rows.append(dict(
            id=loan_id, contract_no=f"BENCH-{loan_id:07d}", borrower_id=borrower_id, branch_id=branch,
            product=product, guarantee_type=guarantee, amount_fen=amount, balance_fen=0 if status == "settled" else amount,
            rate_percent="5.2500", disbursed_on=disbursed, maturity_on=disbursed + timedelta(days=365),
            payment_method=payment, purpose="", status=status, days_past_due=dpd, interest_arrears_fen=0,
            risk_class=risk, settled_on=disbursed + timedelta(days=300) if status == "settled" else None))
        kind = borrowers[borrower_id - 1]["kind"]
        required = required_now(kind, guarantee, status, payment, disbursed)
        for code in required:
            roll = rng.random()
            if roll < 0.025:
                continue                                    # missing
            if roll < 0.035:
                docs.append((loan_id, borrower_id, branch, code, rng.choice(["discarded", "destroyed"])))
                continue                                    # only a tombstone: still missing
            if code == "id_documents" and roll < 0.08:
                docs.append((None, borrower_id, branch, code, "archived"))   # filed for the whole credit file
                continue
            docs.append((loan_id, borrower_id, branch, code, rng.choice(LIVE)))
    # Documents the checklist does not ask for, up to the target total.
    while len(docs) < documents:
        loan = loan_rows[rng.randrange(len(loan_rows))]
        docs.append((loan["id"], loan["borrower_id"], loan["branch_id"], rng.choice(EXTRA_TYPES),
                     rng.choice(LIVE + ("discarded",))))
    rng.shuffle(docs)
    docs = docs[:documents]
    return institutions, borrowers, volumes, loan_rows, docs, per_loan_target


def load(app, data) -> None:
    from sqlalchemy import insert

    from portal.accounts.models import Institution
    from portal.archive.models import Volume
    from portal.auditing import models as _auditing_models  # noqa: F401 - its tables too
    from portal.extensions import db
    from portal.loans.models import Borrower, Loan

    institutions, borrowers, volumes, loans, docs, _ = data
    with app.app_context():
        db.drop_all()
        db.create_all()
        with db.engine.begin() as conn:
            conn.execute(insert(Institution.__table__), institutions)
            conn.execute(insert(Borrower.__table__), borrowers)
            conn.execute(insert(Volume.__table__), volumes)
            conn.execute(insert(Loan.__table__), loans)
        columns = ("volume_id", "loan_id", "borrower_id", "institution_id", "doc_type", "stage", "state",
                   "retention_code", "sha256", "size_bytes", "media_type", "original_name", "object_key", "source",
                   "paper_original", "created_at", "state_changed_at")
        now = datetime(2026, 6, 30)

        def row(i, d):
            loan_id, borrower_id, branch, code, state = d
            return (borrower_id, loan_id, borrower_id, branch, code, STAGE_OF.get(code, "post_loan"), state, "D30",
                    f"{i:064x}", 1000, "application/pdf", f"{code}.pdf", f"bench/{i:09d}", "upload", False, now, now)

        if db.engine.dialect.name == "postgresql":
            raw = db.engine.raw_connection()
            try:
                with raw.cursor() as cur:
                    with cur.copy(f"COPY archive_document ({', '.join(columns)}) FROM STDIN") as copy:
                        for i, d in enumerate(docs, start=1):
                            copy.write_row(row(i, d))
                raw.commit()
            finally:
                raw.close()
        else:
            from portal.archive.models import Document
            names = list(columns)
            with db.engine.begin() as conn:
                batch = 20000
                for start in range(0, len(docs), batch):
                    conn.execute(insert(Document.__table__),
                                 [dict(zip(names, row(i, d))) for i, d in enumerate(docs[start:start + batch],
                                                                                      start=start + 1)])
        # Statistics and, on PostgreSQL, the visibility map, as a database in use has them
        # (autovacuum); without it PostgreSQL cannot read an index without visiting the rows.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE" if db.engine.dialect.name == "postgresql" else "ANALYZE")


# --- timing ----------------------------------------------------------------------------------

def floor_params() -> dict:
    return {"prefix": "/BENCH/%", "cutoff_self": AS_OF - timedelta(days=3),
            "cutoff_entrusted": AS_OF - timedelta(days=7)}


def run_floor(sql: str) -> dict[int, tuple[int, int, int]]:
    from sqlalchemy import text

    from portal.extensions import db
    rows = db.session.execute(text(sql), floor_params()).all()
    db.session.rollback()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def run_audit() -> dict[int, tuple[int, int, int]]:
    from portal.accounts.models import Institution
    from portal.auditing.completeness import audit_completeness
    from portal.extensions import db
    union = db.session.execute(db.select(Institution).filter_by(code="BENCH")).scalar_one()
    audit = audit_completeness(union, as_of=AS_OF)
    result = {t.institution.id: (t.files, t.complete, t.missing_documents) for t in audit.branches()}
    db.session.rollback()
    return result


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def bench(app, runs: int) -> dict:
    from portal.extensions import db
    with app.app_context():
        timings = {"floor_join": [], "floor_exists": [], "audit": []}
        expected = None
        for name, fn in (("floor_join", lambda: run_floor(FLOOR_JOIN)), ("floor_exists", lambda: run_floor(FLOOR_EXISTS)),
                         ("audit", run_audit)):
            _t, result = timed(fn)        # warm-up, and the numbers must agree
            if expected is None:
                expected = result
            elif result != expected:
                diff = {k: (expected.get(k), result.get(k)) for k in set(expected) | set(result)
                        if expected.get(k) != result.get(k)}
                raise SystemExit(f"{name} disagrees with floor_join on {len(diff)} branches, e.g. {list(diff.items())[:3]}")
        for _ in range(runs):
            for name, fn in (("floor_join", lambda: run_floor(FLOOR_JOIN)),
                             ("floor_exists", lambda: run_floor(FLOOR_EXISTS)), ("audit", run_audit)):
                seconds, _r = timed(fn)
                timings[name].append(seconds)
        db.session.remove()
    medians = {k: statistics.median(v) for k, v in timings.items()}
    floor = min(medians["floor_join"], medians["floor_exists"])
    totals = [sum(v[i] for v in expected.values()) for i in range(3)]
    return {"medians": medians, "floor": floor, "ratio": medians["audit"] / floor, "runs": timings,
            "files": totals[0], "complete": totals[1], "missing_documents": totals[2]}


def make_app(url: str, instance: Path):
    from portal import create_app
    return create_app("testing", XINDANG_DATABASE_URL=url, XINDANG_INSTANCE_DIR=str(instance))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--loans", type=int, default=50_000)
    parser.add_argument("--documents", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()

    start = time.perf_counter()
    data = generate(args.loans, args.documents)
    print(f"generated {len(data[3])} loans, {len(data[4])} documents, {len(data[1])} borrowers "
          f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    results = {}
    with tempfile.TemporaryDirectory(prefix="xd-bench-") as tmp:
        tmp = Path(tmp)
        if args.db in ("sqlite", "both"):
            app = make_app(f"sqlite:///{tmp / 'bench.db'}", tmp)
            start = time.perf_counter()
            load(app, data)
            print(f"sqlite: loaded in {time.perf_counter() - start:.1f} s", file=sys.stderr)
            results["sqlite"] = bench(app, args.runs)
        if args.db in ("postgresql", "both"):
            from sqlalchemy import create_engine, text
            schema = f"xd_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            try:
                app = make_app(f"{args.pg_url}?options=-csearch_path%3D{schema}", tmp)
                start = time.perf_counter()
                load(app, data)
                print(f"postgresql: loaded in {time.perf_counter() - start:.1f} s", file=sys.stderr)
                results["postgresql"] = bench(app, args.runs)
                with app.app_context():
                    from portal.extensions import db
                    db.engine.dispose()
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return
    print(f"{args.loans} loans, {args.documents} documents, median of {args.runs} runs")
    print("| database | floor: JOIN | floor: NOT EXISTS | audit | audit ÷ floor | files | complete | missing |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        m = r["medians"]
        print(f"| {name} | {m['floor_join']:.3f} s | {m['floor_exists']:.3f} s | {m['audit']:.3f} s | "
              f"{r['ratio']:.2f} | {r['files']} | {r['complete']} | {r['missing_documents']} |")


if __name__ == "__main__":
    main()
