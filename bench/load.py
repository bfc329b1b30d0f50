"""Load benchmark: the portal under gunicorn on loopback, a county's worth of data, 20 users.

    .venv/bin/python bench/load.py [--loans 100000] [--documents 50000] [--users 20]
                                   [--duration 30] [--warmup 5] [--mode each|mixed|both] [--pages P,Q]
                                   [--db sqlite|postgresql] [--keep DIR] [--json FILE]

1. **Data**, in a new instance folder (SQLite file there, or a new schema of the PostgreSQL
   database ``--pg-url``): the schema by ``flask db upgrade``; one provincial union, two counties
   of ten branches each, staff per branch; ``--loans`` loans (one in five borrowers has two),
   an open inspection per open loan, ``--documents`` documents (four per credit file, in every
   state, with Chinese text as extraction would have left it in ``document_text``), all written
   with bulk inserts. Documents have no stored objects: no page driven here reads one. The
   search index is built by ``flask search reindex``, the portal's own path.
2. **Server**: gunicorn with the portal's own ``gunicorn.conf.py`` (sync workers, three per
   core; ``--workers``, ``--worker-class``, ``--threads`` and ``--keep-alive`` change it for a
   comparison) on a free port of 127.0.0.1 with ``wsgi:app`` (production configuration, the
   portal's own search drainer in each worker). The dashboard panel cache is emptied first (a
   kept data set is brought to the newest migration with ``flask db upgrade`` and its search
   index merged with ``flask search optimize``); on PostgreSQL the data set is vacuumed and
   analysed, as autovacuum would have done after the bulk load.
3. **First views**: each user looks at the dashboard once, one after the other, alone on the
   server: what building a dashboard costs before any of its panels are kept.
4. **Load**: ``--users`` threads, each signed in once as its own user (loan officers, directors
   and archivists of different branches, county auditors, a county director, the union admin),
   each with one connection that it opens again when the server closes it (sync workers
   close it after each response, as behind nginx), asking without pause (no think time: 20 such users are
   the work of many more people) for: the loan list (a random page of the user's scope), a loan
   page (a random loan of the scope), a search (a random word, phrase, name or contract number),
   the home page, the audit dashboard, and, as the floor, a static file and the health check
   served by the same gunicorn. Phases (``--mode``): each page alone, then all of them at once,
   each user taking them in turn. In each phase ``--warmup`` seconds are not counted, then
   ``--duration`` seconds are. Bounded: at most 64 users, 900 s a phase, loopback only.
5. **Report**: requests, throughput, p50/p95/p99 per page, the ratio of each p50 to the static
   floor's, and the CPU time the gunicorn workers spent per request (from /proc: what a page
   costs, whatever else the machine runs) and, on PostgreSQL, the CPU time of the database's
   processes per request; JSON to stdout (``--json`` to a file too), Markdown tables to stderr.

Goal (issue 6): p95 under 200 ms for each page. Figures and what they mean: bench/load.md.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "load-bench-password-42"
MAX_USERS, MAX_SECONDS = 64, 900
COUNTIES, BRANCHES_PER_COUNTY = 2, 10
DOCS_PER_FILE = 4
PAGES = ["loan_list", "loan_page", "search", "home", "dashboard", "static", "health"]
FLOOR = "static"

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
GIVEN = "建国秀英海涛丽娟志远晓东美玲俊杰慧敏志强雪梅春生立新玉兰红梅国强桂英德明永刚文华金凤小平卫东淑珍宝山翠兰长林"
CROPS = ["水稻", "玉米", "小麦", "花生", "油茶", "柑橘", "蔬菜", "烟叶", "茶叶", "生猪", "肉鸡", "奶牛", "小龙虾",
         "苹果", "大姜", "黄桃", "食用菌", "中药材"]
PURPOSES = ["{crop}种植", "{crop}养殖场扩建", "购买{crop}种苗", "农机具购置", "{crop}收购周转", "大棚建设",
            "农家乐装修", "冷库建设"]
CLAUSES = [
    "借款人{name}，住{village}，家庭人口{n}人，主要从事{crop}生产。",
    "本笔贷款用途为{purpose}，期限{term}个月，年利率{rate}%，按月结息，到期还本。",
    "借款合同编号{contract}，借款金额人民币{amount}元。",
    "还款来源主要为{crop}销售收入，预计年收入{amount}元，可按期偿还贷款本息。",
    "客户经理于{day}对借款人进行了贷后检查，生产经营正常，贷款资金按约定用途使用。",
    "经核实，借款人未发现挪用贷款资金的情况，贷款资金已全部用于{purpose}。",
    "保证人{guarantor}自愿为本笔贷款承担连带保证责任，保证期间为主债务履行期届满之日起三年。",
    "借款人应当按照合同约定的用途使用借款，不得挪作他用。",
    "检查结论：借款人{crop}长势良好，预计收入可覆盖到期本息，贷款风险可控。",
    "对检查中发现的风险隐患，客户经理已向借款人提出整改意见，并报分管主任审阅。",
]
VILLAGES = ["东山村", "河西村", "柳树湾", "杨家坪", "新田村", "石门村", "桃源村", "白沙村", "青龙村", "长岭村"]
PHRASES = ["养殖场扩建", "贷后检查", "连带保证责任", "销售收入", "大棚建设", "挪作他用", "整改意见"]
DOC_TYPES = [("loan_application", "application"), ("investigation_report", "application"),
             ("loan_contract", "disbursement"), ("inspection_report", "post_loan")]
STATE_MIX = ["collected", "sorted", "filed", "archived", "archived", "archived"]
# The virtual users: (role, level, how many). Branch staff each take a different branch.
USER_MIX = [("loan_officer", "branch", 8), ("branch_director", "branch", 4), ("archivist", "branch", 4),
            ("auditor", "county", 2), ("branch_director", "county", 1), ("union_admin", "province", 1)]


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- 1. data -------------------------------------------------------------------------------------

@dataclass
class Dataset:
    branches: list[dict] = field(default_factory=list)   # code, id, county, first and last loan id
    counties: list[dict] = field(default_factory=list)   # code, id, branch codes, loan id ranges
    users: list[dict] = field(default_factory=list)      # username, role, loan id ranges in scope
    loans: int = 0
    documents: int = 0
    names: list[str] = field(default_factory=list)       # borrower names that have documents
    contracts: list[str] = field(default_factory=list)   # contract numbers that have documents
    seconds: dict = field(default_factory=dict)


def flask(env: dict, *args: str, timeout: int = 3600) -> str:
    result = subprocess.run([str(BIN / "flask"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise SystemExit(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def _chunks(rows: list[dict], size: int = 5000):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def build(n_loans: int, n_documents: int, seed: int = 7) -> Dataset:
    """Write the data set with bulk inserts into the database the environment names (its schema
    made by ``flask db upgrade``)."""
    from sqlalchemy import insert, text

    from portal import create_app
    from portal.accounts.models import Institution
    from portal.accounts.services import create_institution, create_user, hash_password
    from portal.archive.models import Document, Volume
    from portal.extensions import db
    from portal.loans.models import Borrower, Loan
    from portal.postloan.models import Inspection
    from portal.search.models import DocumentText
    from portal.timeutil import local_today, utcnow

    rng = random.Random(seed)
    data = Dataset(loans=n_loans, documents=n_documents)
    app = create_app("production")
    started = time.monotonic()
    with app.app_context():
        create_institution(None, "LP", "湘南省农村信用社联合社", "province")
        for c in range(1, COUNTIES + 1):
            county = f"LC{c}"
            create_institution(None, county, f"第{c}县农村信用合作联社", "county", "LP")
            codes = []
            for b in range(1, BRANCHES_PER_COUNTY + 1):
                code = f"LB{c}{b:02d}"
                create_institution(None, code, f"{VILLAGES[b - 1][:2]}{c}信用社", "branch", county)
                codes.append(code)
            data.counties.append({"code": county, "branches": codes})
        ids = {i.code: i.id for i in db.session.execute(db.select(Institution)).scalars()}
        for county in data.counties:
            county["id"] = ids[county["code"]]
            for code in county["branches"]:
                data.branches.append({"code": code, "id": ids[code], "county": county["code"]})

        shared = hash_password(PASSWORD)
        officer_of: dict[str, int] = {}
        for branch in data.branches:
            for role in ("loan_officer", "branch_director", "archivist"):
                name = f"{role.split('_')[0]}_{branch['code'].lower()}"
                user = create_user(None, name, PASSWORD, branch["code"], [role], password_hash=shared)
                if role == "loan_officer":
                    officer_of[branch["code"]] = user.id
        for county in data.counties:
            for role in ("auditor", "branch_director"):
                create_user(None, f"{role.split('_')[0]}_{county['code'].lower()}", PASSWORD, county["code"], [role],
                            password_hash=shared)
        create_user(None, "union_lp", PASSWORD, "LP", ["union_admin"], password_hash=shared)
        db.session.commit()

        # Borrowers and loans: each branch its share, ids contiguous per branch.
        today = local_today()
        now = utcnow()
        per_branch = n_loans // len(data.branches)
        borrowers, loans, inspections = [], [], []
        loan_id = borrower_id = 0
        for index, branch in enumerate(data.branches):
            branch["first_loan"] = loan_id + 1
            for k in range(per_branch + (1 if index < n_loans % len(data.branches) else 0)):
                loan_id += 1
                if k == 0 or rng.random() >= 0.2:  # one borrower in five has a second loan
                    borrower_id += 1
                    borrowers.append({
                        "id": borrower_id, "kind": "individual",
                        "name": rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))),
                        "id_number": f"43{rng.randrange(10**4):04d}19{rng.randrange(60, 99)}{rng.randrange(1, 13):02d}"
                                     f"{rng.randrange(1, 29):02d}{rng.randrange(10**4):04d}",
                        "credit_rating": rng.choice(["AAA", "AA", "A", "BBB", "BB", "unrated"]),
                        "institution_id": branch["id"], "created_at": now})
                disbursed = today - timedelta(days=rng.randrange(10, 1500))
                status = rng.choices(["active", "overdue", "settled"], [70, 8, 22])[0]
                dpd = rng.randrange(1, 400) if status == "overdue" else 0
                amount = rng.randrange(10, 3000) * 100_000
                loans.append({
                    "id": loan_id, "contract_no": f"{branch['code']}-JK-{disbursed.year}-{loan_id:06d}",
                    "borrower_id": borrower_id, "branch_id": branch["id"],
                    "product": rng.choice(["farm_credit", "joint_guarantee", "mortgage", "guaranteed", "working_capital"]),
                    "guarantee_type": rng.choice(["credit", "guarantee", "joint", "mortgage"]),
                    "amount_fen": amount, "balance_fen": 0 if status == "settled" else amount * rng.randrange(20, 101) // 100,
                    "rate_percent": Decimal(rng.choice(["4.3500", "5.2200", "6.1800", "7.2000"])),
                    "disbursed_on": disbursed, "maturity_on": disbursed + timedelta(days=rng.choice((180, 365, 730, 1095))),
                    "payment_method": rng.choice(["entrusted", "self"]),
                    "purpose": rng.choice(PURPOSES).format(crop=rng.choice(CROPS)),
                    "status": status, "days_past_due": dpd, "interest_arrears_fen": dpd * 1000,
                    "risk_class": ("normal" if dpd == 0 else "special_mention" if dpd <= 90 else
                                   "substandard" if dpd <= 270 else "doubtful" if dpd <= 360 else "loss"),
                    "settled_on": disbursed + timedelta(days=300) if status == "settled" else None,
                    "officer_id": officer_of[branch["code"]], "created_at": now, "updated_at": now})
                if status != "settled":
                    inspections.append({
                        "loan_id": loan_id, "branch_id": branch["id"], "officer_id": officer_of[branch["code"]],
                        "kind": "routine", "status": "open", "due_on": today + timedelta(days=rng.randrange(-30, 90)),
                        "raised_on": today - timedelta(days=30), "reasons": [], "findings": [], "conclusion": "",
                        "escalation_status": "none", "created_at": now})
            branch["last_loan"] = loan_id
        for rows, model in ((borrowers, Borrower), (loans, Loan), (inspections, Inspection)):
            for chunk in _chunks(rows):
                db.session.execute(insert(model), chunk)
            db.session.commit()
            log(f"  {len(rows)} {model.__tablename__} rows")

        # Documents: four per credit file, files chosen evenly from the borrowers with a loan.
        loan_by_borrower = {}
        for row in loans:
            loan_by_borrower.setdefault(row["borrower_id"], row)
        files = rng.sample(sorted(loan_by_borrower), min(len(loan_by_borrower), -(-n_documents // DOCS_PER_FILE)))
        borrower_rows = {b["id"]: b for b in borrowers}
        volumes, documents, texts = [], [], []
        counters: dict[tuple[int, int], int] = {}
        doc_id = 0
        for volume_id, b_id in enumerate(sorted(files), start=1):
            loan = loan_by_borrower[b_id]
            person = borrower_rows[b_id]
            volumes.append({"id": volume_id, "borrower_id": b_id, "institution_id": loan["branch_id"],
                            "title": f"{person['name']} 信贷档案", "created_at": now})
            for doc_type, stage in DOC_TYPES:
                if doc_id >= n_documents:
                    break
                doc_id += 1
                state = rng.choice(STATE_MIX)
                year = loan["disbursed_on"].year
                number = item = None
                if state in ("filed", "archived"):
                    key = (loan["branch_id"], year)
                    counters[key] = item = counters.get(key, 0) + 1
                    code = next(b["code"] for b in data.branches if b["id"] == loan["branch_id"])
                    number = f"J001-XD·{year}-D30-{code}-{item:05d}"
                body = _document_text(rng, person["name"], loan, today)
                documents.append({
                    "id": doc_id, "volume_id": volume_id, "loan_id": loan["id"], "borrower_id": b_id,
                    "institution_id": loan["branch_id"], "doc_type": doc_type, "stage": stage, "state": state,
                    "archive_number": number, "archive_year": year if number else None, "item_no": item,
                    "retention_code": "D30", "retention_years": 30, "sha256": secrets.token_hex(32),
                    "size_bytes": 20_000 + len(body) * 3,
                    "media_type": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    "page_count": None, "original_name": f"{doc_type}-{loan['contract_no']}.docx",
                    "object_key": f"bench/{doc_id:08d}", "source": "ingest", "paper_original": False,
                    "created_at": now, "state_changed_at": now,
                    "archived_at": now if state == "archived" else None})
                texts.append({"document_id": doc_id, "text": body, "status": "ok", "method": "docx",
                              "chars": len(body), "extracted_at": now})
                data.names.append(person["name"])
                data.contracts.append(loan["contract_no"])
        for rows, model in ((volumes, Volume), (documents, Document), (texts, DocumentText)):
            for chunk in _chunks(rows, 2000):
                db.session.execute(insert(model), chunk)
            db.session.commit()
            log(f"  {len(rows)} {model.__tablename__} rows")
        data.documents = doc_id
        # Names and contract numbers to search for, from every branch (users search their own).
        data.names = rng.sample(sorted(set(data.names)), min(2000, len(set(data.names))))
        data.contracts = rng.sample(sorted(set(data.contracts)), min(2000, len(set(data.contracts))))
        if db.engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in ("borrower", "loan", "archive_volume", "archive_document"):
                db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
            db.session.commit()
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        else:
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    data.seconds["rows"] = round(time.monotonic() - started, 1)
    for county in data.counties:
        county["loan_ranges"] = [(b["first_loan"], b["last_loan"]) for b in data.branches
                                 if b["county"] == county["code"]]
    data.users = _virtual_users(data)
    return data


def _document_text(rng: random.Random, name: str, loan: dict, today: date) -> str:
    crop = rng.choice(CROPS)
    slots = {"name": name, "village": rng.choice(VILLAGES), "n": rng.randrange(2, 8), "crop": crop,
             "purpose": loan["purpose"], "term": rng.choice((6, 12, 24, 36)), "rate": loan["rate_percent"],
             "contract": loan["contract_no"], "amount": f"{loan['amount_fen'] // 100:,}",
             "day": (today - timedelta(days=rng.randrange(400))).strftime("%Y年%m月%d日"),
             "guarantor": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)}
    return "".join(rng.choice(CLAUSES).format(**slots) for _ in range(rng.randrange(6, 16)))


def _virtual_users(data: Dataset) -> list[dict]:
    users, branch_iter = [], iter(data.branches)
    for role, level, count in USER_MIX:
        for i in range(count):
            if level == "branch":
                branch = next(branch_iter)
                users.append({"username": f"{role.split('_')[0]}_{branch['code'].lower()}", "role": role,
                              "loan_ranges": [(branch["first_loan"], branch["last_loan"])]})
            elif level == "county":
                county = data.counties[i % len(data.counties)]
                users.append({"username": f"{role.split('_')[0]}_{county['code'].lower()}", "role": role,
                              "loan_ranges": county["loan_ranges"]})
            else:
                users.append({"username": "union_lp", "role": role,
                              "loan_ranges": [(1, data.loans)]})
    return users


# --- 2. server -----------------------------------------------------------------------------------

def gunicorn_options(args) -> list[str]:
    """The portal's own gunicorn.conf.py, with what the command line changes for a comparison."""
    options = ["-c", str(ROOT / "gunicorn.conf.py")]
    if args.workers:
        options += ["-w", str(args.workers)]
    if args.worker_class:
        options += ["-k", args.worker_class]
    if args.threads:
        options += ["--threads", str(args.threads)]
    if args.keep_alive is not None:
        options += ["--keep-alive", str(args.keep_alive)]
    return options


def start_gunicorn(env: dict, port: int, options: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log_fh:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), *options, "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"], cwd=ROOT, env=env, stdout=log_fh, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn stopped:\n{log_path.read_text(errors='replace')}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not answer /healthz within 120 s")


def worker_cpu_seconds(arbiter: int) -> float:
    """User plus system CPU time of the gunicorn workers (the arbiter's children) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        children = Path(f"/proc/{arbiter}/task/{arbiter}/children").read_text().split()
    except OSError:
        return float("nan")
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def postgres_cpu_seconds() -> float:
    """User plus system CPU time so far of this machine's PostgreSQL processes (its backends, one
    per pooled connection of a worker, and its own helpers): what the database costs a page.
    Other databases' work counts too; the benchmark machine has none running."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        if head.split("(", 1)[-1] == "postgres":
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def stop_gunicorn(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the arbiter stops its workers
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- 3. load -------------------------------------------------------------------------------------

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class Client:
    """One user's browser, reduced to what the load needs: a keep-alive connection to 127.0.0.1
    and the session cookie."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes, dict]:
        headers = {"Accept-Language": "zh-CN"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection; a browser reconnects.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2:
                    raise
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key.strip()] = rest.split(";", 1)[0]
        return response.status, data, dict(response.getheaders())

    def sign_in(self, username: str) -> None:
        status, page, _ = self.request("GET", "/login")
        token = CSRF_RE.search(page.decode())
        if status != 200 or token is None:
            raise RuntimeError(f"login page: {status}")
        status, _, headers = self.request("POST", "/login", urlencode(
            {"username": username, "password": PASSWORD, "csrf_token": token.group(1)}))
        if status != 302:
            raise RuntimeError(f"{username} could not sign in: {status}")


@dataclass
class Sample:
    page: str
    seconds: float
    status: int
    measured: bool


def path_for(page: str, user: dict, rng: random.Random, data: Dataset, per_page: int) -> str:
    ranges = user["loan_ranges"]
    in_scope = sum(last - first + 1 for first, last in ranges)
    if page == "loan_list":
        return f"/loans/?page={rng.randint(1, max(1, min(50, -(-in_scope // per_page))))}"
    if page == "loan_page":
        first, last = rng.choice(ranges)
        return f"/loans/{rng.randint(first, last)}"
    if page == "search":
        kind = rng.random()
        words = (rng.choice(CROPS) if kind < 0.35 else rng.choice(PHRASES) if kind < 0.6
                 else rng.choice(data.names) if kind < 0.8 else rng.choice(data.contracts))
        return "/search/?" + urlencode({"q": words})
    if page == "home":
        return "/"
    if page == "dashboard":
        return "/audit/dashboard"
    if page == "static":
        return "/static/css/portal.css"
    return "/healthz"


def sign_in_all(port: int, data: Dataset, users: int) -> list[tuple[dict, Client]]:
    """Each virtual user signs in once, all at the same time, and keeps its session."""
    chosen = [data.users[i % len(data.users)] for i in range(users)]
    clients = [(user, Client(port)) for user in chosen]
    failures: list[str] = []

    def sign_in(user: dict, client: Client) -> None:
        try:
            client.sign_in(user["username"])
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(f"{user['username']}: {exc}")

    threads = [threading.Thread(target=sign_in, args=pair) for pair in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if failures:
        raise SystemExit(f"sign-in failed: {failures}")
    return clients


def run_phase(clients: list[tuple[dict, Client]], pages: list[str], data: Dataset, warmup: float, duration: float,
              per_page: int, seed: int, cpu=lambda: float("nan"),
              db_cpu=lambda: float("nan")) -> tuple[list[Sample], list[str], float, float]:
    """Every user asks for ``pages`` in turn (a new order each round), without pause, until the
    time is up; requests that start within the warm-up are not counted. Also returns the CPU
    seconds the server's workers and the database spent during the measured time (``cpu()``
    and ``db_cpu()`` read at its ends)."""
    samples: list[Sample] = []
    errors: list[str] = []
    lock = threading.Lock()
    go = threading.Event()
    clock: dict[str, float] = {}

    def user_loop(index: int, user: dict, client: Client) -> None:
        rng = random.Random(f"{seed}-{index}-{'-'.join(pages)}")
        go.wait()
        mine: list[Sample] = []
        order = pages[:]
        while time.monotonic() < clock["end"]:
            rng.shuffle(order)
            for page in order:
                if time.monotonic() >= clock["end"]:
                    break
                path = path_for(page, user, rng, data, per_page)
                t0 = time.perf_counter()
                try:
                    status, _body, _headers = client.request("GET", path)
                except Exception as exc:  # noqa: BLE001 - counted as an error, the user goes on
                    status = 0
                    with lock:
                        errors.append(f"{page} {path}: {exc.__class__.__name__}: {exc}")
                elapsed = time.perf_counter() - t0
                if status != 200:
                    with lock:
                        errors.append(f"{user['username']} {page} {path}: HTTP {status}")
                mine.append(Sample(page, elapsed, status, t0 >= clock["measure_from"]))
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=user_loop, args=(i, user, client), daemon=True)
               for i, (user, client) in enumerate(clients)]
    for t in threads:
        t.start()
    clock["measure_from"] = time.perf_counter() + warmup
    clock["end"] = time.monotonic() + warmup + duration
    go.set()
    time.sleep(max(0.0, clock["measure_from"] - time.perf_counter()))
    cpu_start, db_start = cpu(), db_cpu()
    time.sleep(max(0.0, clock["end"] - time.monotonic()))
    cpu_used, db_used = cpu() - cpu_start, db_cpu() - db_start
    for t in threads:
        t.join(timeout=warmup + duration + 300)
    return samples, errors, cpu_used, db_used


def first_dashboard_views(clients: list[tuple[dict, Client]], cpu, errors: list[str]) -> list[dict]:
    """Each user's first look at the dashboard, alone on the server: the panel cache is empty,
    so this is what building a dashboard costs (later views of the same institution read the
    panels back while nothing under them changes; see bench/load.md)."""
    views = []
    for user, client in clients:
        c0, t0 = cpu(), time.perf_counter()
        status, _body, _headers = client.request("GET", "/audit/dashboard")
        views.append({"username": user["username"], "role": user["role"], "status": status,
                      "ms": round((time.perf_counter() - t0) * 1000, 1),
                      "server_cpu_ms": round((cpu() - c0) * 1000, 1)})
        if status != 200:
            errors.append(f"{user['username']} first dashboard: HTTP {status}")
    return views


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarise(samples: list[Sample], duration: float) -> dict:
    out = {}
    for page in PAGES:
        times = [s.seconds * 1000 for s in samples if s.page == page and s.measured]
        bad = sum(1 for s in samples if s.page == page and s.measured and s.status != 200)
        if not times:
            continue
        out[page] = {"requests": len(times), "errors": bad, "per_second": round(len(times) / duration, 1),
                     "p50_ms": round(percentile(times, 0.50), 1), "p95_ms": round(percentile(times, 0.95), 1),
                     "p99_ms": round(percentile(times, 0.99), 1), "max_ms": round(max(times), 1),
                     "mean_ms": round(statistics.fmean(times), 1), "meets_200ms_p95": percentile(times, 0.95) < 200}
    return out


def with_floor(rows: dict) -> dict:
    floor = rows.get(FLOOR)
    for row in rows.values():
        row["p50_over_floor"] = round(row["p50_ms"] / floor["p50_ms"], 1) if floor else None
        row["p95_over_floor"] = round(row["p95_ms"] / floor["p95_ms"], 1) if floor else None
    return rows


def markdown(result: dict) -> str:
    lines = [f"{result['loans']:,} loans, {result['documents']:,} documents, {result['users']} users, "
             f"{result['database']}, gunicorn ({result['gunicorn']}), "
             f"{result['duration_s']} s measured after {result['warmup_s']} s warm-up per phase; "
             f"machine load average {result['load_average']['before']} before, {result['load_average']['after']} after"]
    lines += ["", "First view of each user's dashboard (panel cache empty), one user at a time:", "",
              "| user | role | ms | server CPU ms |", "|---|---|---:|---:|"]
    lines += [f"| {v['username']} | {v['role']} | {v['ms']} | {v['server_cpu_ms']} |"
              for v in result.get("first_dashboard_views", [])]
    titles = {"each": "Each page alone (all users on that page)", "mixed": "All pages at once (each user in turn)"}
    for phase, rows in result["phases"].items():
        total = round(sum(r["requests"] for r in rows.values()) / result["duration_s"], 1)
        database = (f", PostgreSQL {result['mixed_database_cpu_cores']}"
                    if result.get("mixed_database_cpu_cores") is not None else "")
        lines += ["", f"{titles[phase]}: {total} requests/s, the workers using "
                      f"{result['mixed_server_cpu_cores']} CPU cores{database}" if phase == "mixed" else titles[phase], "",
                  "| page | requests | req/s | p50 ms | p95 ms | p99 ms | p50 ÷ floor | p95 < 200 ms "
                  "| server CPU ms/request | database CPU ms/request |",
                  "|---|---:|---:|---:|---:|---:|---:|:---:|---:|---:|"]
        for page, row in rows.items():
            lines.append(f"| {page}{' (floor)' if page == FLOOR else ''} | {row['requests']} | {row['per_second']} | "
                         f"{row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | {row['p50_over_floor']} | "
                         f"{'yes' if row['meets_200ms_p95'] else '**no**'} | "
                         f"{row.get('server_cpu_ms_per_request', '')} | {row.get('database_cpu_ms_per_request', '')} |")
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument("--documents", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30, help="seconds measured in each phase")
    parser.add_argument("--warmup", type=float, default=5, help="seconds not counted before each phase")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's, 3 per core)")
    parser.add_argument("--worker-class", choices=("sync", "gthread"), help="default: gunicorn.conf.py's, sync")
    parser.add_argument("--threads", type=int, help="threads per gthread worker")
    parser.add_argument("--keep-alive", type=int,
                        help="seconds a gthread worker keeps an idle connection (gunicorn's default 2)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("XINDANG_TEST_PG", PG_DEFAULT),
                        help="a PostgreSQL database where a schema of its own is created (and dropped)")
    parser.add_argument("--keep", metavar="DIR", help="build the data into DIR and keep it; reuse it if it is there")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON here too")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mode", choices=("each", "mixed", "both"), default="both",
                        help="each page alone, all pages at once, or both (default)")
    parser.add_argument("--pages", default=",".join(PAGES),
                        help=f"the pages driven, comma-separated (default: all of {','.join(PAGES)})")
    args = parser.parse_args()
    pages = [p for p in args.pages.split(",") if p]
    if not pages or set(pages) - set(PAGES):
        parser.error(f"--pages: some of {','.join(PAGES)}")
    if not 1 <= args.users <= MAX_USERS or not 0 < args.duration + args.warmup <= MAX_SECONDS:
        parser.error(f"users 1–{MAX_USERS}, warm-up plus duration at most {MAX_SECONDS} s")

    instance = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="xindang-load-"))
    instance.mkdir(parents=True, exist_ok=True)
    schema = None
    if args.db == "postgresql":
        schema = "xd_load_" + (re.sub(r"\W", "", instance.name).lower()[-20:] if args.keep else str(os.getpid()))
        url = f"{args.pg_url}?options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{instance / 'xindang.db'}"
    env = {**os.environ, "FLASK_APP": "portal", "XINDANG_CONFIG": "production", "XINDANG_INSTANCE_DIR": str(instance),
           "XINDANG_DATABASE_URL": url, "XINDANG_SECURE_COOKIES": "false", "XINDANG_DEFAULT_LOCALE": "zh",
           "XINDANG_LOGIN_RATE_LIMIT": "100000 per minute", "XINDANG_STORAGE_DIR": str(instance / "objects")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("XINDANG_") or k == "FLASK_APP"})
    manifest = instance / "load-dataset.json"
    process = None
    try:
        if manifest.exists():
            data = Dataset(**json.loads(manifest.read_text()))
            log(f"reusing the data set in {instance}; flask db upgrade (new migrations only)")
            flask(env, "db", "upgrade")
        else:
            if schema:
                _pg_schema(args.pg_url, schema, create=True)
            log(f"schema: flask db upgrade ({args.db})")
            t0 = time.monotonic()
            flask(env, "db", "upgrade")
            log(f"data: {args.loans} loans, {args.documents} documents")
            data = build(args.loans, args.documents, args.seed)
            data.seconds["schema"] = round(time.monotonic() - t0 - data.seconds["rows"], 1)
            log(f"  rows written in {data.seconds['rows']} s; search index: flask search reindex")
            t0 = time.monotonic()
            log("  " + flask(env, "search", "reindex").strip().splitlines()[-1])
            data.seconds["reindex"] = round(time.monotonic() - t0, 1)
            if args.keep:
                manifest.write_text(json.dumps(data.__dict__, ensure_ascii=False))
        # A data set kept from before reindex merged its segments: merge them now (no-op after).
        log("  " + flask(env, "search", "optimize").strip().splitlines()[-1])
        _empty_panel_cache(url)
        if schema:
            _vacuum(url)
        load_before = os.getloadavg()
        port = free_port()
        options = gunicorn_options(args)
        log(f"gunicorn {' '.join(options)} on 127.0.0.1:{port}")
        process = start_gunicorn(env, port, options, instance / "gunicorn.log")
        per_page = 50
        clients = sign_in_all(port, data, args.users)
        cpu = lambda: worker_cpu_seconds(process.pid)  # noqa: E731
        db_cpu = postgres_cpu_seconds if schema else (lambda: float("nan"))
        mixed_cpu = mixed_db_cpu = None
        phases: dict[str, dict] = {}
        errors: list[str] = []
        log("first views: each user's dashboard once, one after the other (builds and keeps its panels)")
        first_views = first_dashboard_views(clients, cpu, errors)
        if args.mode in ("each", "both"):
            phases["each"] = {}
            for page in pages:
                log(f"load: {page} alone, {args.users} users, {args.warmup} s warm-up, {args.duration} s measured")
                samples, errs, cpu_s, db_s = run_phase(clients, [page], data, args.warmup, args.duration,
                                                       per_page, args.seed, cpu, db_cpu)
                rows = summarise(samples, args.duration)
                if page in rows:  # server CPU per request: the cost, whatever else the machine runs
                    rows[page]["server_cpu_ms_per_request"] = round(1000 * cpu_s / rows[page]["requests"], 1)
                    if schema:
                        rows[page]["database_cpu_ms_per_request"] = round(1000 * db_s / rows[page]["requests"], 1)
                phases["each"].update(rows)
                errors += errs
            with_floor(phases["each"])
        if args.mode in ("mixed", "both"):
            log(f"load: all pages, {args.users} users, {args.warmup} s warm-up, {args.duration} s measured")
            samples, errs, cpu_s, db_s = run_phase(clients, pages, data, args.warmup, args.duration, per_page,
                                                   args.seed, cpu, db_cpu)
            phases["mixed"] = with_floor(summarise(samples, args.duration))
            mixed_cpu = round(cpu_s / args.duration, 2)
            mixed_db_cpu = round(db_s / args.duration, 2) if schema else None
            errors += errs
        result = {
            "date": datetime.now().isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} CPUs, {platform.platform()}",
            "load_average": {"before": round(load_before[0], 1), "after": round(os.getloadavg()[0], 1)},
            "python": platform.python_version(), "database": args.db, "loans": data.loans,
            "documents": data.documents, "users": args.users, "gunicorn": " ".join(["gunicorn.conf.py", *options[2:]]),
            "warmup_s": args.warmup, "duration_s": args.duration, "build_seconds": data.seconds,
            "first_dashboard_views": first_views, "phases": phases, "mixed_server_cpu_cores": mixed_cpu,
            "mixed_database_cpu_cores": mixed_db_cpu, "errors": errors[:20], "error_count": len(errors),
        }
        print(json.dumps(result, ensure_ascii=False, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(result, ensure_ascii=False, indent=2))
        print("\n" + markdown(result) + "\n", file=sys.stderr)
        if errors:
            log(f"{len(errors)} errors, first: {errors[:5]}")
        return 0 if not errors else 1
    finally:
        if process is not None:
            stop_gunicorn(process)
        if not args.keep:
            shutil.rmtree(instance, ignore_errors=True)
            if schema:
                _pg_schema(args.pg_url, schema, create=False)


def _empty_panel_cache(url: str) -> None:
    """Every run starts with no dashboard panel kept (``portal.kept``): the first
    view of each institution's dashboard builds it, within the warm-up."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_panel_cache"))
    engine.dispose()


def _vacuum(url: str) -> None:
    """PostgreSQL: ``VACUUM ANALYZE`` the data set, which autovacuum would have done to tables
    this size soon after the bulk load (autovacuum is off on the benchmark machines). Without
    it no page is marked all-visible, index-only scans read the heap, and counting a county's
    loans is a sequential scan of the whole table. Quick once done."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars()
        for table in list(tables):
            conn.execute(text(f'VACUUM ANALYZE "{table}"'))
    engine.dispose()


def _pg_schema(base_url: str, schema: str, *, create: bool) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        if create:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
