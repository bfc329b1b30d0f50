"""Search benchmark: the portal's Whoosh index against SQLite FTS5, on one synthetic Chinese
credit archive, in one run.

    .venv/bin/python bench/search_bench.py [--sizes 20000,100000] [--out bench/search_bench.md]

For each size:

1. **Corpus** (deterministic, ``Corpus(seed).document(i)``): loans of the demo unions' branches
   (portal/demo/places.py), eight documents a loan (contract, investigation report, inspection
   reports, receipt …), texts of 300–3,000 characters (triangular, mean ≈ 1,650) written from
   clause templates of a credit file, filled with borrowers, villages, purposes, amounts, dates,
   contract, archive and ID numbers. Half the borrowers' given names are drawn character by
   character, so rjieba has never seen them. The texts also go into an SQLite table, as
   ``document_text`` in the portal, where both engines fetch them for highlighting.
2. **Indexing**, timed: the portal's own path (``flask search reindex --procs 2``,
   ``SearchIndex.bulk_add``): documents in institution order, analysis
   (``portal.search.schema.document_fields``: rjieba + dictionary, bigrams, identifiers) and the
   ``FastSegmentWriter``, 10,000 documents a segment, ``--procs`` processes; then FTS5 on the same segmented text
   (columns: words, bigrams in order, title, borrower, identifiers and their trigrams;
   contentless, so neither engine stores the text). Documents/s is wall clock and CPU.
3. **Size**: the index folder, and the FTS5 database, divided by the raw UTF-8 text.
4. **Recall** against a plain substring scan: 300 verbatim Chinese phrases of 2–8 characters cut
   at random from random documents, quoted, and 150 borrower names; the truth is every document
   whose text, title or borrower contains the string. Precision is reported beside recall.
5. **Latency**: a fixed mix of queries (single word, domain word, two words, phrase, contract
   number whole and in part, borrower name, filtered by type and dates, sorted by date), each
   at page 1 and page 5 of 20, as a provincial user, a county user and a branch user, with
   counts per document type and the page's highlights (texts fetched from SQLite, highlighted
   with ``portal.search.query.highlight``) — the whole work of a results page but the HTML.
   Both engines run the same mix, interleaved, five rounds (the contract numbers, names and
   words change between rounds); p50/p95 over all of them. Then the Whoosh side runs the mix
   again with the engine's posting cache emptied before every query (``engine.POSTINGS``): the
   cost of a query none of whose terms a worker has decoded yet.

Figures go to ``--out`` (Markdown) and to stdout as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portal.demo.places import GIVEN_NAMES, PROVINCES  # noqa: E402
from portal.search import engine  # noqa: E402
from portal.search.analysis import (CJK_RUN, bigrams, get_analyzer, grams, ident_parts, normalize,  # noqa: E402
                                    normalize_identifier)
from portal.search.index import SearchIndex  # noqa: E402
from portal.search.query import Filters, build_plan, highlight, parse_query  # noqa: E402
from portal.search.schema import IndexRecord, document_fields  # noqa: E402

# -- the corpus ---------------------------------------------------------------------------------

DOC_TYPES = [
    ("loan_application", "借款申请书", "application"),
    ("investigation_report", "贷前调查报告", "application"),
    ("approval_form", "贷款审批表", "application"),
    ("loan_contract", "借款合同", "disbursement"),
    ("guarantee_contract", "保证合同", "disbursement"),
    ("mortgage_contract", "抵押合同", "disbursement"),
    ("collateral_certificate", "他项权证", "disbursement"),
    ("loan_receipt", "借据", "disbursement"),
    ("inspection_report", "贷后检查报告", "post_loan"),
    ("classification_form", "五级分类认定表", "post_loan"),
    ("collection_notice", "到期催收通知书", "post_loan"),
    ("settlement_proof", "结清证明", "settlement"),
    ("writeoff_form", "核销审批表", "write_off"),
]
# A loan's file: which types, in this order (inspection reports repeat).
FILE_PLAN = [0, 1, 3, 7, 8, 8, 9, 11]
FILE_PLAN_MORTGAGE = [1, 2, 3, 5, 6, 7, 8, 10]
FILE_PLAN_GUARANTEE = [0, 1, 2, 3, 4, 7, 8, 12]
STATES = ["collected", "sorted", "filed", "archived", "archived", "archived", "archived"]

CROPS = ["水稻", "玉米", "小麦", "花生", "油茶", "柑橘", "蔬菜", "烟叶", "茶叶", "生猪", "肉鸡", "奶牛", "小龙虾",
         "苹果", "大姜", "黄桃", "食用菌", "中药材"]
OFFICERS = ["刘建军", "王海涛", "陈丽娟", "张志远", "李晓东", "周美玲", "谭俊杰", "罗慧敏", "孙志强", "赵雪梅"]
COLLATERAL = ["自建房屋一栋", "商铺一间", "农村土地经营权", "定期存单", "厂房及附属设施", "货运车辆一台", "林权"]

CLAUSES = {
    "common": [
        "借款人{name}，身份证号码{idno}，住{county}{town}{village}，家庭人口{n}人，主要从事{crop}种植养殖。",
        "经{branch}客户经理{officer}实地走访，借款人家庭和睦，邻里关系良好，无不良嗜好。",
        "借款人在{branch}开立结算账户，近一年账户流水{amount}元，资金往来正常。",
        "借款人征信报告显示无逾期记录，对外担保{n}笔，担保余额{amount}元。",
        "本笔贷款用途为{purpose}，期限{term}个月，年利率{rate}%，按月结息，到期还本。",
        "借款合同编号{contract}，借款金额人民币{amount}元，发放日期{date}，到期日期{date2}。",
        "还款来源主要为{crop}销售收入，预计年收入{amount}元，扣除生产生活开支后可按期偿还贷款本息。",
        "保证人{guarantor}自愿为本笔贷款承担连带保证责任，保证期间为主债务履行期届满之日起三年。",
        "抵押物为借款人所有的{collateral}，评估价值{amount}元，已办理抵押登记并取得他项权证。",
        "本档案按规定立卷归档，档号{archive}，保管期限三十年。",
        "客户经理{officer}于{date}对借款人进行了贷后检查，借款人生产经营正常，贷款资金按约定用途使用。",
        "经核实，借款人未发现挪用贷款资金的情况，贷款资金已全部用于{purpose}。",
        "借款人联系电话{phone}，联系地址为{county}{town}{village}{n}组。",
        "根据贷款风险分类办法，该笔贷款五级分类认定为{risk}类。",
        "借款人{name}所在{village}共有农户{n}户，以{crop}为主导产业，近年收入稳定增长。",
        "截至{date}，贷款余额{amount}元，欠息{n}元，逾期天数{n2}天。",
        "贷款发放后七日内客户经理进行了首次检查，确认贷款资金已划入{trade}账户。",
        "经贷审小组集体审议，同意向借款人发放{product}{amount}元。",
        "借款人承诺按时足额归还贷款本息，如有违约，愿承担相应的违约责任。",
        "本合同一式三份，借款人、保证人、贷款人各执一份，具有同等法律效力。",
        "贷款人有权对借款人的生产经营和财务状况进行检查监督，借款人应予配合。",
        "借款人应当按照合同约定的用途使用借款，不得挪作他用，不得用于股票、期货等投资。",
        "在借款期间，借款人发生迁移、变更住所或联系方式的，应于七日内书面通知贷款人。",
        "对检查中发现的风险隐患，客户经理已向借款人提出整改意见，并报分管主任审阅。",
        "借款人家庭资产包括住房{n}间，农用车辆{n2}台，存款{amount}元，负债{amount2}元。",
        "{trade}成立于{year}年，现有社员{n}户，年销售收入{amount}元。",
        "客户经理建议继续保持对该户的跟踪管理，下次检查时间不晚于{date2}。",
        "本笔贷款已于{date2}全部结清，借款人无其他未结清贷款，特此证明。",
        "因借款人失联且无可执行财产，经县联社审批同意核销贷款本金{amount}元。",
        "催收记录：{date}电话催收一次，{date2}上门催收一次，借款人表示将尽快筹款还贷。",
    ],
    "loan_contract": [
        "第一条 借款金额：人民币{amount}元整。第二条 借款用途：{purpose}。",
        "第三条 借款期限：自{date}起至{date2}止，实际发放日以借据为准。",
        "第四条 借款利率：年利率{rate}%，逾期罚息在原利率基础上加收百分之五十。",
        "第五条 还款方式：按月付息，到期一次性还本，借款人应在还款日前将款项存入指定账户。",
        "第六条 担保方式：{guarantee}。",
        "第七条 贷款支付：采用{payment}方式，贷款人根据借款人的提款申请和支付委托支付贷款资金。",
    ],
    "inspection_report": [
        "检查方式：现场检查。检查人员：{officer}、{officer2}。检查日期：{date}。",
        "检查内容：借款人经营状况、贷款资金使用情况、担保人及抵押物变化情况、还款能力变化情况。",
        "检查结论：借款人{crop}长势良好，预计收入可覆盖到期本息，贷款风险可控。",
        "借款人反映今年{crop}价格有所下降，收入较上年减少约{n}成，但仍具备还款能力。",
        "担保人{guarantor}经营正常，担保能力未发生明显变化。",
    ],
    "investigation_report": [
        "一、借款人基本情况：{name}，{age}岁，{village}村民，从事{crop}生产{n}年，经验丰富。",
        "二、借款用途及金额：借款人申请贷款{amount}元，用于{purpose}，资金缺口真实合理。",
        "三、还款能力分析：借款人家庭年收入约{amount}元，年支出约{amount2}元，具备按期还款能力。",
        "四、调查结论：经双人调查核实，借款人资信良好，建议发放贷款{amount}元，期限{term}个月。",
    ],
}
RISKS = ["正常", "正常", "正常", "关注", "次级", "可疑", "损失"]
GUARANTEES = ["信用", "保证", "农户联保", "抵押", "质押"]
PAYMENTS = ["受托支付", "自主支付"]
PRODUCTS = ["农户小额信用贷款", "农户联保贷款", "抵押贷款", "保证贷款", "流动资金贷款", "个人消费贷款"]


@dataclass(frozen=True)
class Branch:
    path: str
    name: str
    county: str
    towns: tuple[str, ...]
    villages: tuple[str, ...]
    surnames: str
    purposes: tuple[str, ...]
    trades: tuple[str, ...]
    region: str


def _branches() -> list[Branch]:
    out = []
    for prov in PROVINCES:
        mid = f"/{prov.code}/" + (f"{prov.city[0]}/" if getattr(prov, "city", None) else "")
        for county in prov.counties:
            for b in county.branches:
                out.append(Branch(f"{mid}{county.code}/{b.code}/", b.name, county.place, b.towns, prov.villages,
                                  prov.surnames, prov.farm_purposes, prov.trades, county.region_code))
    return out


BRANCHES = _branches()
ALL_GIVEN = [n for names in GIVEN_NAMES.values() for n in names]
GIVEN_CHARS = sorted({c for n in ALL_GIVEN for c in n})


class Corpus:
    def __init__(self, seed: int = 7) -> None:
        self.seed = seed

    def _loan(self, loan_no: int) -> dict:
        rng = random.Random(f"{self.seed}-loan-{loan_no}")
        branch = BRANCHES[rng.randrange(len(BRANCHES))]
        surname = rng.choice(branch.surnames)
        # Half the names are common given names, half drawn character by character (unseen names).
        given = rng.choice(ALL_GIVEN) if rng.random() < 0.5 else "".join(
            rng.choice(GIVEN_CHARS) for _ in range(rng.choice((1, 2, 2))))
        year = rng.choice((2019, 2020, 2021, 2022, 2023, 2024))
        start = date(year, 1, 1) + timedelta(days=rng.randrange(360))
        birth = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 40))
        seq = loan_no % 100000
        code = branch.path.strip("/").split("/")[-1]
        return {
            "rng_seed": f"{self.seed}-{loan_no}",
            "branch": branch,
            "name": surname + given,
            "guarantor": rng.choice(branch.surnames) + rng.choice(ALL_GIVEN),
            "idno": f"{branch.region}{birth:%Y%m%d}{rng.randrange(1000):03d}{rng.choice('0123456789X')}",
            "contract": f"{code}-JK-{year}-{seq:05d}",
            "archive_base": f"J012-XD·{year}-D30-{code}",
            "start": start,
            "end": start + timedelta(days=30 * rng.choice((6, 12, 12, 24, 36))),
            "purpose": rng.choice(branch.purposes).replace("{n}", str(rng.randrange(5, 80))),
            "trade": rng.choice(ENTERPRISE) + rng.choice(branch.trades),
            "plan": rng.choice((FILE_PLAN, FILE_PLAN, FILE_PLAN_MORTGAGE, FILE_PLAN_GUARANTEE)),
            "year": year,
        }

    def document(self, i: int) -> IndexRecord:
        loan_no, k = divmod(i, 8)
        loan = self._loan(loan_no)
        rng = random.Random(f"{self.seed}-doc-{i}")
        type_code, type_name, stage = DOC_TYPES[loan["plan"][k]]
        branch: Branch = loan["branch"]
        doc_day = loan["start"] + timedelta(days=k * rng.randrange(20, 60))
        target = int(rng.triangular(300, 3000, 1650))
        slots = self._slots(loan, rng, doc_day)
        pool = CLAUSES["common"] + CLAUSES.get(type_code, []) * 3
        parts = [f"{type_name}\n{branch.name}\n"]
        length = len(parts[0])
        while length < target:
            sentence = rng.choice(pool)
            # New values for some slots per sentence, so amounts and dates vary within a text.
            slots["amount"] = f"{rng.randrange(1, 300) * 1000:,}"
            slots["n"] = str(rng.randrange(2, 60))
            text = sentence.format(**slots)
            parts.append(text)
            length += len(text)
            if rng.random() < 0.15:
                parts.append("\n")
        text = "".join(parts)[:target]
        return IndexRecord(
            id=i + 1,
            title=f"{loan['name']}{type_name}",
            doctype=type_code,
            stage=stage,
            state=STATES[rng.randrange(len(STATES))],
            institution_path=branch.path,
            doc_date=doc_day,
            added=datetime(doc_day.year, doc_day.month, doc_day.day, 9) + timedelta(minutes=rng.randrange(600)),
            text=text,
            borrower=loan["name"],
            contract_no=loan["contract"],
            archive_no=f"{loan['archive_base']}-{i % 10000:04d}",
            id_number=loan["idno"],
            text_stamp="bench",
        )

    def _slots(self, loan: dict, rng: random.Random, day: date) -> dict:
        branch: Branch = loan["branch"]
        return {
            "name": loan["name"], "idno": loan["idno"], "county": branch.county,
            "town": rng.choice(branch.towns), "village": rng.choice(branch.villages), "crop": rng.choice(CROPS),
            "branch": branch.name, "officer": rng.choice(OFFICERS), "officer2": rng.choice(OFFICERS),
            "amount": "", "amount2": f"{rng.randrange(1, 100) * 1000:,}", "purpose": loan["purpose"],
            "term": rng.choice((6, 12, 24, 36)), "rate": f"{rng.choice((4.35, 5.22, 6.18, 7.2, 8.5)):.2f}",
            "contract": loan["contract"], "date": f"{day:%Y年%m月%d日}", "date2": f"{loan['end']:%Y年%m月%d日}",
            "guarantor": loan["guarantor"], "collateral": rng.choice(COLLATERAL),
            "archive": f"{loan['archive_base']}-{rng.randrange(10000):04d}",
            "phone": f"1{rng.randrange(30, 99)}{rng.randrange(10**8):08d}", "risk": rng.choice(RISKS),
            "n": "", "n2": str(rng.randrange(0, 400)), "trade": loan["trade"], "product": rng.choice(PRODUCTS),
            "year": loan["year"] - rng.randrange(1, 10), "age": rng.randrange(25, 62),
            "guarantee": rng.choice(GUARANTEES), "payment": rng.choice(PAYMENTS),
        }


ENTERPRISE = ["金穗", "绿源", "丰收", "兴农", "惠农", "禾丰", "富民", "春晖", "新田", "瑞丰", "鑫源", "盛禾", "田园",
              "嘉禾", "恒丰", "万家", "康泰", "青山", "碧水", "华丰", "沃土", "润农", "聚丰", "福源"]


# -- the portal's index -------------------------------------------------------------------------

SEGMENT_DOCS = 10_000


def institution_order(corpus: Corpus, n: int) -> list[int]:
    """Document numbers in (institution path, id) order: the order `flask search reindex` indexes
    in (``records.live_document_ids``)."""
    return sorted(range(n), key=lambda i: (corpus._loan(i // 8)["branch"].path, i))


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the indexing processes)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def build_whoosh(corpus: Corpus, n: int, path: Path, procs: int) -> dict:
    """The portal's reindex path: ``SearchIndex.bulk_add`` in institution order, one segment per
    10,000 documents, in ``procs`` processes."""
    idx = SearchIndex(path)
    idx.recreate_now()
    order = institution_order(corpus, n)
    batches = [order[start:start + SEGMENT_DOCS] for start in range(0, n, SEGMENT_DOCS)]

    def build(numbers):
        analyzer = get_analyzer()
        for i in numbers:
            yield document_fields(corpus.document(i), analyzer)

    done = [0]

    def progress(count):
        done[0] += count
        print(f"  whoosh: {done[0]} documents", file=sys.stderr, flush=True)

    wall, cpu = time.perf_counter(), _cpu_seconds()
    idx.bulk_add(batches, build, procs=procs, progress=progress)
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "size": idx.size_bytes(), "index": idx, "order": order,
            "procs": procs}


def whoosh_search(idx: SearchIndex, parsed, *, scope, filters, sort, page, per_page=20):
    plan = build_plan(parsed, scope_path=scope, filters=filters, analyzer=get_analyzer(), id_numbers=True)
    with idx.searching() as searcher:
        result = engine.execute(searcher, plan, sort=sort, offset=(page - 1) * per_page, limit=per_page)
        ids = [int(searcher.stored_fields(d)["id"]) for d, _s in result.hits]
    return result.total, ids, dict(result.facets)


def whoosh_all_ids(idx: SearchIndex, parsed, order: list[int]) -> set[int]:
    """Every match (for recall), as document ids (the n-th document indexed is order[n])."""
    plan = build_plan(parsed, scope_path=None, filters=Filters(), analyzer=get_analyzer(), id_numbers=True)
    with idx.searching() as searcher:
        reader = searcher.reader()
        leaves = reader.leaf_readers() if hasattr(reader, "leaf_readers") else [(reader, 0)]
        found: set[int] = set()
        for seg, base in leaves:
            found.update(order[d + base] + 1 for d in engine._matches(plan, engine._Segment(seg, base)))
        return found


# -- the peer: SQLite FTS5 on the same segmented text -------------------------------------------

FTS_COLUMNS = ("words", "grams", "title", "borrower", "ids", "idgrams")
FTS_WEIGHTS = "1.0, 0.5, 4.0, 4.0, 6.0, 2.0"


def _short_tokens(value: str) -> str:
    """A title or a name as FTS5 tokens, as ``short_text_terms`` indexes it: the bigrams of each
    Chinese run in order (a lone character as itself), identifiers whole and by parts."""
    tokens: list[str] = []
    for match in re.finditer(r"([\u3007\u3400-\u9fff]+)|([0-9A-Za-z][0-9A-Za-z\-_/.·:#]*)", normalize(value)):
        if match.group(1):
            run = match.group(1)
            tokens.extend(bigrams(run) if len(run) > 1 else [run])
        else:
            tokens.extend(ident_parts(match.group(2)))
    return " ".join(tokens)


def fts_row(record: IndexRecord, analyzer) -> tuple:
    """The FTS5 columns of a record, from the same analysis as the Whoosh fields."""
    text = normalize(record.text)
    analyzed = analyzer.analyze(text)
    words = " ".join(w for w, n in analyzed.words.items() for _ in range(n))
    gram_text = " ".join(" ".join(bigrams(m.group())) for m in CJK_RUN.finditer(text))
    idents = [v.lower() for v in (record.contract_no, record.archive_no) if v]
    ids = " ".join(p for v in idents for p in ident_parts(v)) + " " + record.id_number.lower()
    idgrams = " , ".join(" ".join(grams(normalize_identifier(v), 3)) for v in [*idents, record.id_number])
    return (words, gram_text, _short_tokens(record.title), _short_tokens(record.borrower), ids, idgrams)


def build_fts(corpus: Corpus, n: int, path: Path) -> dict:
    analyzer = get_analyzer()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(f"CREATE VIRTUAL TABLE fts USING fts5({', '.join(FTS_COLUMNS)}, content='', "
               "tokenize=\"unicode61 tokenchars '-_/.·:#'\")")
    db.execute("CREATE TABLE meta (rowid INTEGER PRIMARY KEY, doctype TEXT, path TEXT, doc_date INTEGER, "
               "added INTEGER)")
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, n, SEGMENT_DOCS):
        rows, metas = [], []
        for i in range(start, min(n, start + SEGMENT_DOCS)):
            record = corpus.document(i)
            rows.append((record.id, *fts_row(record, analyzer)))
            metas.append((record.id, record.doctype, record.institution_path,
                          int(record.doc_date.strftime("%Y%m%d")), int(record.added.timestamp())))
        db.executemany(f"INSERT INTO fts(rowid, {', '.join(FTS_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT INTO meta VALUES (?, ?, ?, ?, ?)", metas)
        db.commit()
        print(f"  fts5: {min(n, start + SEGMENT_DOCS)} documents", file=sys.stderr, flush=True)
    db.execute("CREATE INDEX meta_path ON meta(path)")
    db.execute("CREATE INDEX meta_date ON meta(doc_date, added)")
    db.execute("INSERT INTO fts(fts) VALUES ('optimize')")
    db.commit()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    fts_bytes = sum(row[0] for row in db.execute(
        "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'fts%'")) if _has_dbstat(db) else os.path.getsize(path)
    db.close()
    return {"wall_s": wall, "cpu_s": cpu, "size": fts_bytes}


def _has_dbstat(db) -> bool:
    try:
        db.execute("SELECT 1 FROM dbstat LIMIT 1").fetchall()
        return True
    except sqlite3.OperationalError:
        return False


def fts_match(parsed) -> str:
    """The same parsed query as an FTS5 expression over the same terms."""
    def clause(c) -> str:
        if c.kind == "cjk":
            return f'{{grams title borrower}}: "{" ".join(bigrams(c.text))}"'
        parts = [f'{{words title ids}}: "{c.text}"']
        if len(c.text) >= 3:
            parts.append(f'idgrams: "{" ".join(grams(c.text, 3))}"')
        return "(" + " OR ".join(parts) + ")"

    def group(g) -> str:
        alts = ["(" + " AND ".join(clause(c) for c in alt) + ")" for alt in g.alternatives]
        return alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")"

    positive = " AND ".join(group(g) for g in parsed.groups if not g.negated)
    negative = "".join(f" NOT {group(g)}" for g in parsed.groups if g.negated)
    return positive + negative


def fts_search(db, parsed, *, scope, filters: Filters, sort, page, per_page=20):
    where = ["fts MATCH ?"]
    args: list = [fts_match(parsed)]
    if scope:
        where.append("m.path >= ? AND m.path < ?")
        args += [scope, scope[:-1] + "0"]          # '/' + 1 == '0': the prefix range
    if filters.doctype:
        where.append("m.doctype = ?")
        args.append(filters.doctype)
    if filters.date_from:
        where.append("m.doc_date >= ?")
        args.append(int(filters.date_from.strftime("%Y%m%d")))
    if filters.date_to:
        where.append("m.doc_date <= ?")
        args.append(int(filters.date_to.strftime("%Y%m%d")))
    condition = " AND ".join(where)
    facets = dict(db.execute(f"SELECT m.doctype, count(*) FROM fts JOIN meta m ON m.rowid = fts.rowid "
                             f"WHERE {condition} GROUP BY m.doctype", args).fetchall())
    order = {"relevance": f"bm25(fts, {FTS_WEIGHTS})", "date_desc": "m.doc_date DESC, m.added DESC",
             "date_asc": "m.doc_date, m.added"}[sort]
    ids = [r[0] for r in db.execute(f"SELECT fts.rowid FROM fts JOIN meta m ON m.rowid = fts.rowid WHERE {condition} "
                                    f"ORDER BY {order} LIMIT ? OFFSET ?", [*args, per_page, (page - 1) * per_page])]
    return sum(facets.values()), ids, facets


def fts_all_ids(db, parsed) -> set[int]:
    return {r[0] for r in db.execute("SELECT rowid FROM fts WHERE fts MATCH ?", [fts_match(parsed)])}


# -- the texts, as the portal keeps them (for highlights) ---------------------------------------

def build_texts(corpus: Corpus, n: int, path: Path) -> tuple[list[str], list[str], int]:
    """Store the texts for highlighting; return the normalised texts, each text with its title
    and borrower (what a phrase may match, for the substring scan), and the raw UTF-8 size."""
    db = sqlite3.connect(path)
    db.execute("DROP TABLE IF EXISTS document_text")
    db.execute("CREATE TABLE document_text (document_id INTEGER PRIMARY KEY, text TEXT)")
    texts, blobs, raw_bytes = [], [], 0
    for start in range(0, n, SEGMENT_DOCS):
        rows = []
        for i in range(start, min(n, start + SEGMENT_DOCS)):
            record = corpus.document(i)
            rows.append((record.id, record.text))
            raw_bytes += len(record.text.encode("utf-8"))
            texts.append(normalize(record.text))
            blobs.append(texts[-1] + "\n" + normalize(record.title) + "\n" + record.borrower)
        db.executemany("INSERT INTO document_text VALUES (?, ?)", rows)
    db.commit()
    db.close()
    return texts, blobs, raw_bytes


def highlights(texts_db, ids: list[int], terms: list[str]) -> int:
    if not ids:
        return 0
    marks = 0
    rows = texts_db.execute(f"SELECT document_id, text FROM document_text WHERE document_id IN "
                            f"({','.join('?' * len(ids))})", ids).fetchall()
    for _id, text in rows:
        marks += str(highlight(text, terms)).count("<mark>")
    return marks


# -- recall -------------------------------------------------------------------------------------

def sample_phrases(texts: list[str], count: int, rng: random.Random) -> list[str]:
    phrases = []
    while len(phrases) < count:
        text = texts[rng.randrange(len(texts))]
        runs = [m.group() for m in CJK_RUN.finditer(text) if len(m.group()) >= 2]
        if not runs:
            continue
        run = rng.choice(runs)
        length = rng.randint(2, min(8, len(run)))
        start = rng.randint(0, len(run) - length)
        phrases.append(run[start:start + length])
    return phrases


def measure_recall(texts, names, phrases, find) -> dict:
    """``find(text, quoted)`` → set of ids. Truth: ids whose text, title or borrower contains it."""
    out = {}
    for label, items, quoted in (("phrases", phrases, True), ("names", names, False)):
        hit = truth_total = found_total = correct = 0
        scan_s = 0.0
        for item in items:
            t0 = time.perf_counter()
            truth = {i + 1 for i, t in enumerate(texts) if item in t}
            scan_s += time.perf_counter() - t0
            found = find(item, quoted)
            truth_total += len(truth)
            hit += len(truth & found)
            found_total += len(found)
            correct += len(found & truth)
        out[label] = {"queries": len(items), "recall": hit / truth_total if truth_total else 1.0,
                      "precision": correct / found_total if found_total else 1.0, "truth_docs": truth_total,
                      "scan_s_per_query": scan_s / len(items)}
    return out


# -- latency ------------------------------------------------------------------------------------

WORDS = ["挪用", "失联", "欠息", "催收", "违约", "冷库", "罚息", "股票"]
DOMAIN = ["贷后检查", "五级分类", "他项权证", "农户联保", "借款合同", "贷前调查报告"]
PAIRS = ["借款合同 抵押", "贷后检查 挪用", "保证人 连带责任", "五级分类 关注", "还款来源 柑橘"]
PHRASES = ['"生产经营正常"', '"保证期间为主债务履行期"', '"按约定用途使用"', '"具备按期还款能力"',
           '"未发现挪用贷款资金"']


@dataclass(frozen=True)
class Query:
    label: str
    text: str
    filters: Filters = Filters()
    sort: str = "relevance"


def query_mix(corpus: Corpus, n: int, round_no: int) -> list[Query]:
    rng = random.Random(f"mix-{round_no}")
    doc = corpus.document(rng.randrange(n))
    year = rng.choice((2020, 2021, 2022, 2023))
    return [
        Query("single word", rng.choice(WORDS)),
        Query("domain word", rng.choice(DOMAIN)),
        Query("two words", rng.choice(PAIRS)),
        Query("phrase", rng.choice(PHRASES)),
        Query("contract number", doc.contract_no),
        Query("contract number, part", doc.contract_no.split("-", 1)[1][:-2]),   # e.g. JK-2022-001
        Query("borrower name", doc.borrower),
        Query("filtered (type, dates)", rng.choice(WORDS[:5]),
              Filters(doctype="inspection_report", date_from=date(year, 1, 1), date_to=date(year, 12, 31))),
        Query("sorted by date", rng.choice(DOMAIN), sort="date_desc"),
    ]


def scopes(rng: random.Random) -> list[tuple[str, str]]:
    branch = rng.choice(BRANCHES).path
    county = "/".join(branch.split("/")[:-2]) + "/"
    return [("province", "/" + branch.split("/")[1] + "/"), ("county", county), ("branch", branch)]


def measure_latency(corpus, n, idx, fts_db, texts_db, rounds: int) -> dict:
    analyzer = get_analyzer()
    samples: dict[str, list[tuple]] = {"whoosh": [], "fts5": []}
    mismatches = 0
    for round_no in range(rounds):
        rng = random.Random(f"scopes-{round_no}")
        for query in query_mix(corpus, n, round_no):
            parsed = parse_query(query.text, analyzer)
            terms = parsed.highlight_terms()
            for scope_label, scope in scopes(rng):
                for page in (1, 5):
                    totals = {}
                    # Alternate which engine goes first, so neither always finds a warm cache.
                    order = ("whoosh", "fts5") if (round_no + page) % 2 else ("fts5", "whoosh")
                    for name in order:
                        wall, cpu = time.perf_counter(), time.process_time()
                        if name == "whoosh":
                            total, ids, facets = whoosh_search(idx, parsed, scope=scope, filters=query.filters,
                                                               sort=query.sort, page=page)
                        else:
                            total, ids, facets = fts_search(fts_db, parsed, scope=scope, filters=query.filters,
                                                            sort=query.sort, page=page)
                        highlights(texts_db, ids, terms)
                        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                        samples[name].append((query.label, scope_label, page, wall * 1000, cpu * 1000, total))
                        totals[name] = (total, facets)
                    if totals["whoosh"] != totals["fts5"]:
                        mismatches += 1
    return {"samples": samples, "count_mismatches": mismatches}


def measure_cold(corpus, n, idx, texts_db, rounds: int) -> list[tuple]:
    """The Whoosh side of the same mix again, with what the engine learnt of terms (decoded
    posting lists, document frequencies) forgotten before every query: what a query costs when none of its terms was asked for since
    the worker started (or since the cache let them go)."""
    analyzer = get_analyzer()
    samples = []
    for round_no in range(rounds):
        rng = random.Random(f"scopes-{round_no}")
        for query in query_mix(corpus, n, round_no):
            parsed = parse_query(query.text, analyzer)
            terms = parsed.highlight_terms()
            for scope_label, scope in scopes(rng):
                for page in (1, 5):
                    engine.forget_terms()
                    wall, cpu = time.perf_counter(), time.process_time()
                    total, ids, _facets = whoosh_search(idx, parsed, scope=scope, filters=query.filters,
                                                        sort=query.sort, page=page)
                    highlights(texts_db, ids, terms)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    samples.append((query.label, scope_label, page, wall * 1000, cpu * 1000, total))
    return samples


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return 0.0
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summarise(samples: list[tuple]) -> dict:
    wall = [s[3] for s in samples]
    cpu = [s[4] for s in samples]
    by_label: dict[str, list[float]] = {}
    by_label_cpu: dict[str, list[float]] = {}
    for s in samples:
        by_label.setdefault(s[0], []).append(s[3])
        by_label_cpu.setdefault(s[0], []).append(s[4])
    return {"n": len(samples), "p50": percentile(wall, 0.5), "p95": percentile(wall, 0.95),
            "cpu_p50": percentile(cpu, 0.5), "cpu_p95": percentile(cpu, 0.95),
            "by_query": {k: (percentile(v, 0.5), percentile(v, 0.95)) for k, v in by_label.items()},
            "by_query_cpu": {k: (percentile(v, 0.5), percentile(v, 0.95)) for k, v in by_label_cpu.items()}}


# -- one size, and the report -------------------------------------------------------------------

def run_size(n: int, workdir: Path, rounds: int, recall_phrases: int, recall_names: int, reuse: bool = False,
             procs: int = 2) -> dict:
    corpus = Corpus()
    print(f"[{n}] corpus and texts", file=sys.stderr, flush=True)
    texts_path = workdir / f"texts-{n}.db"
    texts, blobs, raw_bytes = build_texts(corpus, n, texts_path)
    load_indexing = os.getloadavg()[0]
    built = workdir / f"build-{n}.json"
    if reuse and built.exists():
        # Indexes built by an earlier run in this folder: measure again without rebuilding.
        print(f"[{n}] reusing the indexes in {workdir}", file=sys.stderr, flush=True)
        figures = json.loads(built.read_text())
        whoosh, fts = figures["whoosh"], figures["fts5"]
        idx = SearchIndex(workdir / f"whoosh-{n}")
        order = institution_order(corpus, n)
    else:
        print(f"[{n}] indexing: Whoosh", file=sys.stderr, flush=True)
        whoosh = build_whoosh(corpus, n, workdir / f"whoosh-{n}", procs)
        print(f"[{n}] indexing: FTS5", file=sys.stderr, flush=True)
        fts = build_fts(corpus, n, workdir / f"fts-{n}.db")
        idx = whoosh.pop("index")
        order = whoosh.pop("order")
        built.write_text(json.dumps({"whoosh": whoosh, "fts5": fts}))   # (index and order popped above)
    fts_db = sqlite3.connect(workdir / f"fts-{n}.db")
    texts_db = sqlite3.connect(texts_path)
    analyzer = get_analyzer()

    print(f"[{n}] recall", file=sys.stderr, flush=True)
    rng = random.Random(f"recall-{n}")
    phrases = sample_phrases(texts, recall_phrases, rng)
    names = list(dict.fromkeys(corpus.document(rng.randrange(n)).borrower for _ in range(recall_names * 2)))[:recall_names]

    def whoosh_find(item, quoted):
        return whoosh_all_ids(idx, parse_query(f'"{item}"' if quoted else item, analyzer), order)

    def fts_find(item, quoted):
        return fts_all_ids(fts_db, parse_query(f'"{item}"' if quoted else item, analyzer))

    recall = {"whoosh": measure_recall(blobs, names, phrases, whoosh_find),
              "fts5": measure_recall(blobs, names, phrases, fts_find)}

    load_before_latency = os.getloadavg()[0]
    print(f"[{n}] latency", file=sys.stderr, flush=True)
    with idx.searching() as searcher:
        segments = len(searcher.reader().leaf_readers()) if hasattr(searcher.reader(), "leaf_readers") else 1
    latency = measure_latency(corpus, n, idx, fts_db, texts_db, rounds)
    print(f"[{n}] latency, Whoosh with an empty posting cache before each query", file=sys.stderr, flush=True)
    cold = measure_cold(corpus, n, idx, texts_db, rounds)
    return {
        "documents": n, "raw_text_bytes": raw_bytes, "avg_chars": sum(len(t) for t in texts) / n,
        "whoosh": {"docs_per_s_wall": n / whoosh["wall_s"], "docs_per_s_cpu": n / whoosh["cpu_s"],
                   "procs": whoosh.get("procs", 1),
                   "index_bytes": whoosh["size"], "size_ratio": whoosh["size"] / raw_bytes, "segments": segments,
                   "recall": recall["whoosh"], "latency": summarise(latency["samples"]["whoosh"]),
                   "latency_cold": summarise(cold)},
        "fts5": {"docs_per_s_wall": n / fts["wall_s"], "docs_per_s_cpu": n / fts["cpu_s"],
                 "index_bytes": fts["size"], "size_ratio": fts["size"] / raw_bytes,
                 "recall": recall["fts5"], "latency": summarise(latency["samples"]["fts5"])},
        "count_mismatches": latency["count_mismatches"],
        "load_average": {"indexing": load_indexing, "latency": (load_before_latency + os.getloadavg()[0]) / 2},
    }


def report(results: list[dict], args, started: datetime) -> str:
    lines = ["# Search benchmark: Whoosh (the portal's index) and SQLite FTS5", "",
             f"Run {started:%Y-%m-%d %H:%M} UTC with `.venv/bin/python bench/search_bench.py "
             f"--sizes {args.sizes} --rounds {args.rounds} --procs {args.procs}{' --reuse' if args.reuse else ''}` on {platform.machine()}, {os.cpu_count()} cores "
             f"(shared with other work), Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}. "
             "See the module docstring for what each figure measures.", ""]
    for r in results:
        w, f = r["whoosh"], r["fts5"]
        lines += [f"## {r['documents']:,} documents ({r['avg_chars']:.0f} characters on average, "
                  f"{r['raw_text_bytes'] / 1e6:.0f} MB of UTF-8 text)", "",
                  "| | Whoosh (portal) | FTS5 | Whoosh ÷ FTS5 |", "|---|---|---|---|",
                  f"| indexing, documents/s (wall; Whoosh in {w['procs']} processes, FTS5 in 1) | "
                  f"{w['docs_per_s_wall']:.0f} | {f['docs_per_s_wall']:.0f} | "
                  f"{w['docs_per_s_wall'] / f['docs_per_s_wall']:.2f} |",
                  f"| indexing, documents/s of CPU time (all processes) | {w['docs_per_s_cpu']:.0f} | "
                  f"{f['docs_per_s_cpu']:.0f} | "
                  f"{w['docs_per_s_cpu'] / f['docs_per_s_cpu']:.2f} |",
                  f"| index size ÷ raw text | {w['size_ratio']:.2f} | {f['size_ratio']:.2f} | "
                  f"{w['size_ratio'] / f['size_ratio']:.2f} |"]
        for kind in ("phrases", "names"):
            wr, fr = w["recall"][kind], f["recall"][kind]
            lines.append(f"| recall, {kind} ({wr['queries']} queries) | {wr['recall']:.4f} | {fr['recall']:.4f} | |")
            lines.append(f"| precision, {kind} | {wr['precision']:.4f} | {fr['precision']:.4f} | |")
        wl, fl = w["latency"], f["latency"]
        lines += [f"| latency p50, ms (wall; {wl['n']} queries) | {wl['p50']:.1f} | {fl['p50']:.1f} | "
                  f"{wl['p50'] / fl['p50']:.2f} |",
                  f"| latency p95, ms (wall) | {wl['p95']:.1f} | {fl['p95']:.1f} | {wl['p95'] / fl['p95']:.2f} |",
                  f"| latency p50 / p95, ms (CPU time) | {wl['cpu_p50']:.1f} / {wl['cpu_p95']:.1f} | "
                  f"{fl['cpu_p50']:.1f} / {fl['cpu_p95']:.1f} | {wl['cpu_p95'] / fl['cpu_p95']:.2f} (p95) |"]
        wc = w.get("latency_cold")
        if wc:
            lines += [f"| latency p50 / p95, ms, posting cache emptied before each query (wall) | "
                      f"{wc['p50']:.1f} / {wc['p95']:.1f} | | {wc['p95'] / fl['p95']:.2f} (p95) |",
                      f"| the same, CPU time | {wc['cpu_p50']:.1f} / {wc['cpu_p95']:.1f} | | "
                      f"{wc['cpu_p95'] / fl['cpu_p95']:.2f} (p95) |"]
        lines += ["", f"Whoosh index: {w['segments']} segments. Totals and counts per type differed between the "
                  f"engines in {r['count_mismatches']} of {wl['n']} queries. A substring scan of all texts took "
                  f"{w['recall']['phrases']['scan_s_per_query'] * 1000:.0f} ms a phrase.", "",
                  "| query (p50 / p95 ms) | Whoosh, wall | FTS5, wall | Whoosh, CPU | FTS5, CPU | Whoosh, cold cache, CPU |",
                  "|---|---|---|---|---|---|"]
        for label, (p50, p95) in wl["by_query"].items():
            fp50, fp95 = fl["by_query"][label]
            cp50, cp95 = wl.get("by_query_cpu", {}).get(label, (0.0, 0.0))
            fcp50, fcp95 = fl.get("by_query_cpu", {}).get(label, (0.0, 0.0))
            kp50, kp95 = (wc or {}).get("by_query_cpu", {}).get(label, (0.0, 0.0))
            lines.append(f"| {label} | {p50:.1f} / {p95:.1f} | {fp50:.1f} / {fp95:.1f} | {cp50:.1f} / {cp95:.1f} | "
                         f"{fcp50:.1f} / {fcp95:.1f} | {kp50:.1f} / {kp95:.1f} |")
        load = r.get("load_average")
        if load:
            lines.append(f"Load average (1 min) of the machine: {load['indexing']:.1f} when indexing started, "
                         f"{load['latency']:.1f} during the latency runs; on {os.cpu_count()} cores anything above "
                         f"{os.cpu_count()} means the figures measured in wall-clock time include waiting for a core.")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--procs", type=int, default=2, help="Indexing processes for the Whoosh index.")
    parser.add_argument("--recall-phrases", type=int, default=300)
    parser.add_argument("--recall-names", type=int, default=150)
    parser.add_argument("--workdir", help="Where to build (default: a temporary folder, removed after).")
    parser.add_argument("--out", help="Write the Markdown report here.")
    parser.add_argument("--reuse", action="store_true",
                        help="Reuse indexes an earlier run built in --workdir (their indexing figures too).")
    args = parser.parse_args()
    started = datetime.utcnow()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="xd-search-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for n in [int(s) for s in args.sizes.split(",") if s.strip()]:
            results.append(run_size(n, workdir, args.rounds, args.recall_phrases, args.recall_names, args.reuse,
                                    args.procs))
            print(json.dumps(results[-1], ensure_ascii=False, indent=2, default=str))
            if args.out:
                Path(args.out).write_text(report(results, args, started), encoding="utf-8")
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
