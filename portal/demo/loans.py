"""The demo's institutions, staff, borrowers and loans: planned from ``places`` with one
``random.Random`` per province (fixed seed), then written; rows that exist already (matched by
institution code, user name, ID number or contract number) are left as they are."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from ..accounts.models import Institution, Level, Role, User
from ..accounts.services import create_institution, create_user, get_institution, hash_password
from ..audit_trail import record_event
from ..extensions import db
from ..loans.models import RISK_ORDER, Borrower, BorrowerKind, Loan, LoanStatus, RiskClass
from ..loans.services import loan_facts
from ..rules.lookup import rules_for
from ..rules.services import set_union_plugin
from ..timeutil import add_months
from . import places as data
from .places import BranchSpec, CountySpec, ProvinceSpec

DEMO_PASSWORD = "Xindang#2024"
LOANS_PER_BRANCH = 22
SEED = "xindang-demo"

# Days past due of the overdue demo loans, one band per overdue bucket and beyond, so every
# bucket of the default edges (30, 60, 90, 180, 360) and every risk floor shows up.
DPD_BANDS = ((1, 10), (11, 30), (31, 60), (61, 90), (91, 180), (181, 270), (271, 360), (361, 450))


# --- staff ------------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    institution_code: str
    department: str
    display_name: str = ""


def _branch_director_department(branch: BranchSpec) -> str:
    return "主任室" if branch.name.endswith("信用社") else "行长室"


def plan_staff(spec: ProvinceSpec) -> list[DemoUser]:
    """One login per role and place: the union's administrator, per county its credit
    department head, auditor and archivist, per branch two loan officers, a post-loan officer,
    the director and the archivist (and the system administrator in 湖南)."""
    rng = random.Random(f"{SEED}-staff-{spec.code}")
    used: set[str] = set()

    def person() -> str:
        while True:
            name = _person_name(rng, spec, male=rng.random() < 0.6, born=rng.randint(1968, 1996))
            if name not in used:
                used.add(name)
                return name

    p = spec.code.lower()
    staff: list[DemoUser] = []
    if spec.code == "HN":
        staff.append(DemoUser("admin", Role.ADMIN.value, spec.code, "科技信息部", person()))
    staff.append(DemoUser(f"{p}_admin", Role.UNION_ADMIN.value, spec.code, "信贷管理部", person()))
    if spec.city:
        city_code = spec.city[0]
        staff.append(DemoUser(f"{city_code.lower()}_auditor", Role.AUDITOR.value, city_code, "稽核部", person()))
    for county in spec.counties:
        c = county.code.lower()
        staff += [
            DemoUser(f"{c}_director", Role.BRANCH_DIRECTOR.value, county.code, "信贷科", person()),
            DemoUser(f"{c}_auditor", Role.AUDITOR.value, county.code, "稽核部", person()),
            DemoUser(f"{c}_archivist", Role.ARCHIVIST.value, county.code, "综合办公室", person()),
        ]
        for branch in county.branches:
            b = branch.code.lower()
            staff += [
                DemoUser(f"{b}_officer1", Role.LOAN_OFFICER.value, branch.code, "信贷部", person()),
                DemoUser(f"{b}_officer2", Role.LOAN_OFFICER.value, branch.code, "信贷部", person()),
                DemoUser(f"{b}_postloan", Role.POST_LOAN_OFFICER.value, branch.code, "风险管理部", person()),
                DemoUser(f"{b}_director", Role.BRANCH_DIRECTOR.value, branch.code,
                         _branch_director_department(branch), person()),
                DemoUser(f"{b}_archivist", Role.ARCHIVIST.value, branch.code, "综合办公室", person()),
            ]
    return staff


# --- borrowers --------------------------------------------------------------------------

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def id_check_digit(first17: str) -> str:
    """GB 11643: the 18th character of a resident ID number."""
    total = sum(int(ch) * w for ch, w in zip(first17, ID_WEIGHTS))
    return "10X98765432"[total % 11]


def uscc_check_char(first17: str) -> str:
    """GB 32100: the 18th character of a unified social credit code."""
    total = sum(USCC_CHARS.index(ch) * w for ch, w in zip(first17, USCC_WEIGHTS))
    return USCC_CHARS[(31 - total % 31) % 31]


def _org_code(rng: random.Random) -> str:
    """GB 11714 organisation code: eight digits and a check character."""
    body = "".join(rng.choice("0123456789") for _ in range(8))
    check = 11 - sum(int(ch) * w for ch, w in zip(body, ORG_CODE_WEIGHTS)) % 11
    return body + {10: "X", 11: "0"}.get(check, str(check))


def _weighted(rng: random.Random, pairs) -> str:
    values, weights = zip(*pairs)
    return rng.choices(values, weights=weights)[0]


def _person_name(rng: random.Random, spec: ProvinceSpec, male: bool, born: int) -> str:
    surnames = spec.surnames
    # Common surnames first: the first third of the list takes about two thirds of the draws.
    weights = [3 if i < len(surnames) // 3 else 1 for i in range(len(surnames))]
    surname = rng.choices(surnames, weights=weights)[0]
    generation = "older" if born < 1978 else "younger"
    given = rng.choice(data.GIVEN_NAMES[("male" if male else "female", generation)])
    return surname + given


@dataclass
class BorrowerPlan:
    kind: str
    name: str
    id_number: str
    phone: str
    address: str
    credit_rating: str = "unrated"


class BorrowerMaker:
    """Borrowers of one province: unique ID numbers, names and enterprise names."""

    def __init__(self, rng: random.Random, spec: ProvinceSpec) -> None:
        self.rng, self.spec = rng, spec
        self.ids: set[str] = set()
        self.enterprise_names: set[str] = set()

    def _mobile(self) -> str:
        return self.rng.choice(data.MOBILE_PREFIXES) + "".join(self.rng.choice("0123456789") for _ in range(8))

    def _home(self, county: CountySpec, branch: BranchSpec) -> tuple[str, str]:
        rng = self.rng
        # Most borrowers live where the branch sits.
        town = branch.towns[0] if rng.random() < 0.5 else rng.choice(branch.towns)
        village = rng.choice(self.spec.villages)
        return town, village

    def individual(self, county: CountySpec, branch: BranchSpec) -> BorrowerPlan:
        rng = self.rng
        male = rng.random() < 0.72  # rural loans are mostly in the household head's name
        born = date(1962, 1, 1) + timedelta(days=rng.randint(0, 37 * 365))
        name = _person_name(rng, self.spec, male, born.year)
        while True:
            seq = rng.randint(0, 99) * 10 + rng.choice((1, 3, 5, 7, 9) if male else (0, 2, 4, 6, 8))
            body = f"{county.region_code}{born:%Y%m%d}{seq:03d}"
            number = body + id_check_digit(body)
            if number not in self.ids:
                self.ids.add(number)
                break
        town, village = self._home(county, branch)
        if self.spec.code == "SD":
            address = f"{self.spec.place}{county.place}{town}{village}{rng.randint(1, 260)}号"
        else:
            address = f"{self.spec.place}{county.place}{town}{village}{rng.randint(1, 12)}组{rng.randint(1, 60)}号"
        return BorrowerPlan(BorrowerKind.INDIVIDUAL.value, name, number, self._mobile(), address)

    def enterprise(self, county: CountySpec, branch: BranchSpec) -> BorrowerPlan:
        rng = self.rng
        while True:
            trade = rng.choice(self.spec.trades)
            name = f"{county.short}{rng.choice(data.ENTERPRISE_WORDS)}{trade}"
            if name not in self.enterprise_names:
                self.enterprise_names.add(name)
                break
        # 93 farmers' cooperative, 92 individual business (family farm), 91 company.
        kind_code = "93" if trade.endswith("合作社") else "92" if trade == "家庭农场" else "91"
        while True:
            body = f"{kind_code}{county.region_code}{_org_code(rng)}"
            number = body + uscc_check_char(body)
            if number not in self.ids:
                self.ids.add(number)
                break
        town, village = self._home(county, branch)
        place = f"{town}工业园" if trade.endswith("公司") else f"{town}{village}"
        phone = (f"{county.area_code}-{rng.choice('5678')}{rng.randint(0, 9999999):07d}"
                 if rng.random() < 0.6 else self._mobile())
        return BorrowerPlan(BorrowerKind.ENTERPRISE.value, name, number, phone,
                            f"{self.spec.place}{county.place}{place}")


# --- loans ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProductSpec:
    guarantees: tuple[str, ...]
    amount_wan: tuple[int, int]       # range in 万元 (10,000 yuan)
    terms: tuple[int, ...]            # months
    rate: tuple[float, float]         # annual percent
    enterprise: bool = False


PRODUCTS = {
    "farm_credit": ProductSpec(("credit",), (3, 20), (12, 12, 12, 24), (5.5, 8.5)),
    "joint_guarantee": ProductSpec(("joint",), (5, 30), (12, 12, 24), (5.5, 8.0)),
    "multi_guarantee": ProductSpec(("guarantee",), (5, 30), (12, 24), (5.2, 7.8)),
    "guaranteed": ProductSpec(("guarantee",), (5, 50), (12, 24, 36), (5.0, 7.5)),
    "mortgage": ProductSpec(("mortgage",), (20, 120), (24, 36, 36), (4.35, 6.0)),
    "pledge": ProductSpec(("pledge",), (5, 50), (12,), (4.35, 5.0)),
    "consumer": ProductSpec(("credit", "credit", "guarantee"), (3, 30), (12, 24, 36), (5.5, 8.5)),
    "working_capital": ProductSpec(("mortgage", "guarantee"), (50, 300), (12,), (4.5, 6.5), enterprise=True),
    "fixed_assets": ProductSpec(("mortgage",), (100, 500), (36,), (4.35, 6.0), enterprise=True),
}

GOOD_RATINGS = (("AAA", 8), ("AA", 22), ("A", 30), ("BBB", 18), ("BB", 8), ("B", 3), ("unrated", 11))
POOR_RATINGS = (("A", 5), ("BBB", 20), ("BB", 30), ("B", 20), ("CCC", 10), ("unrated", 15))


def _term_days(months: int) -> int:
    return months * 365 // 12


def _round_down(value_yuan: float, step: int = 100) -> int:
    return max(step, int(value_yuan) // step * step)


@dataclass
class LoanPlan:
    """One loan as planned: days counted back from the anchor date, amounts in yuan."""

    borrower: BorrowerPlan
    status: str
    product: str
    guarantee_type: str
    amount_yuan: int
    rate: Decimal
    term_months: int
    disbursed_ago: int
    payment_method: str
    purpose: str
    balance_share: float = 1.0
    dpd: int = 0
    settled_ago: int | None = None
    restructured_ago: int | None = None
    reviewer_concern: bool = False      # the reviewer rated it 关注 below the floor
    problem_loan: bool = False          # managed by the post-loan officer
    order: int = 0


def _purpose(rng: random.Random, spec: ProvinceSpec, product: str) -> str:
    if product in ("farm_credit", "joint_guarantee", "multi_guarantee", "guaranteed"):
        if rng.random() < 0.2:
            return rng.choice(data.SIDE_BUSINESS_PURPOSES)
        return rng.choice(spec.farm_purposes).format(n=rng.choice((20, 30, 50, 80, 100, 120, 150, 200)))
    if product == "mortgage":
        if rng.random() < 0.4:
            return rng.choice(spec.farm_purposes).format(n=rng.choice((100, 150, 200, 300)))
        return rng.choice(data.MORTGAGE_PURPOSES)
    if product == "pledge":
        return rng.choice(data.PLEDGE_PURPOSES)
    if product == "consumer":
        return rng.choice(data.CONSUMER_PURPOSES)
    if product == "working_capital":
        return rng.choice(data.WORKING_CAPITAL_PURPOSES)
    return rng.choice(data.FIXED_ASSET_PURPOSES)


def _new_loan(rng: random.Random, spec: ProvinceSpec, product: str, borrower: BorrowerPlan, status: str) -> LoanPlan:
    p = PRODUCTS[product]
    low, high = p.amount_wan
    step = 1 if high <= 50 else 5
    # Small amounts are the common case: skew the draw towards the low end.
    amount_wan = low + int((high - low) * rng.random() ** 1.8 / step) * step
    rate = Decimal(f"{rng.uniform(*p.rate):.2f}")
    amount_yuan = amount_wan * 10_000
    if borrower.kind == BorrowerKind.INDIVIDUAL.value:
        # 个人贷款管理办法: above 30万元 the bank pays the suppliers (受托支付).
        self_pay = amount_yuan <= 300_000 and rng.random() < 0.35
    else:
        self_pay = rng.random() < 0.15
    return LoanPlan(
        borrower=borrower, status=status, product=product, guarantee_type=rng.choice(p.guarantees),
        amount_yuan=amount_yuan, rate=rate, term_months=rng.choice(p.terms), disbursed_ago=0,
        payment_method="self" if self_pay else "entrusted", purpose=_purpose(rng, spec, product))


def _schedule(rng: random.Random, plan: LoanPlan, dpd_band: tuple[int, int] | None, recent: bool) -> None:
    """Dates and repayment state for the plan's status, as days before the anchor."""
    term = _term_days(plan.term_months)
    if plan.status == LoanStatus.ACTIVE.value:
        if recent:
            plan.disbursed_ago = rng.randint(1, 6)
        elif plan.restructured_ago is not None:
            plan.term_months = max(plan.term_months, 24)
            term = _term_days(plan.term_months)
            plan.disbursed_ago = rng.randint(200, min(term - 10, 1090))
        else:
            plan.disbursed_ago = rng.randint(8, min(term - 10, 1090))
        if plan.restructured_ago is not None:
            plan.restructured_ago = rng.randint(20, min(300, plan.disbursed_ago - 150))
        if rng.random() < 0.5:  # instalments paid so far
            elapsed = plan.disbursed_ago / term
            plan.balance_share = max(0.1, 1 - elapsed * rng.uniform(0.4, 0.9))
    elif plan.status == LoanStatus.OVERDUE.value:
        assert dpd_band is not None
        dpd = rng.randint(*dpd_band)
        matured = rng.random() < 0.55 and plan.restructured_ago is None
        if plan.restructured_ago is not None:
            plan.term_months = 36     # restructuring stretched the schedule
            term = _term_days(36)
        longest = min(term - 10, 1090)
        if matured and dpd + term <= 1090:
            plan.disbursed_ago = dpd + term            # due at maturity and not repaid
        elif plan.restructured_ago is not None:
            plan.disbursed_ago = rng.randint(dpd + 200, longest)
        elif dpd + 30 < longest:
            plan.disbursed_ago = rng.randint(dpd + 30, longest)   # an instalment missed
        else:
            plan.term_months = 12
            plan.disbursed_ago = dpd + _term_days(12)
        plan.balance_share = rng.uniform(0.5, 1.0)
        plan.dpd = dpd
        if plan.restructured_ago is not None:
            # Restructured some months after disbursement, then an instalment of the new
            # schedule was missed.
            plan.restructured_ago = rng.randint(dpd + 10, plan.disbursed_ago - 150)
        plan.problem_loan = dpd > 90
    elif plan.status == LoanStatus.SETTLED.value:
        plan.disbursed_ago = rng.randint(150, 1090)
        if term < plan.disbursed_ago:   # repaid at (or a little before) maturity
            plan.settled_ago = max(1, plan.disbursed_ago - term + rng.randint(0, 25))
        else:                           # repaid early
            plan.settled_ago = rng.randint(1, plan.disbursed_ago - 60)
        plan.balance_share = 0.0
    else:  # written off: long overdue, classified as loss and written off
        plan.term_months = 12
        plan.disbursed_ago = rng.randint(380, 700) + _term_days(12)
        plan.balance_share = rng.uniform(0.6, 1.0)
        plan.problem_loan = True


def plan_branch_loans(rng: random.Random, spec: ProvinceSpec, county: CountySpec, branch: BranchSpec,
                      index: int, people: BorrowerMaker, dpd_bands: list[tuple[int, int]]) -> list[LoanPlan]:
    """The branch's loans: three overdue, three settled (one renewed), one written off in every
    other branch, a restructured loan here and there, the rest active."""
    written_off = 1 if index % 2 == 0 else 0
    statuses = ([LoanStatus.OVERDUE.value] * 3 + [LoanStatus.SETTLED.value] * 3
                + [LoanStatus.WRITTEN_OFF.value] * written_off)
    statuses += [LoanStatus.ACTIVE.value] * (LOANS_PER_BRANCH - len(statuses))
    rng.shuffle(statuses)
    plans: list[LoanPlan] = []
    restructure_active = index % 2 == 1
    restructure_overdue = index % 2 == 0
    concern = index % 2 == 0
    recent_done = False
    for status in statuses:
        product = _weighted(rng, spec.product_weights)
        enterprise = PRODUCTS[product].enterprise
        borrower = people.enterprise(county, branch) if enterprise else people.individual(county, branch)
        plan = _new_loan(rng, spec, product, borrower, status)
        band = None
        recent = False
        if status == LoanStatus.OVERDUE.value:
            band = dpd_bands.pop()
            if restructure_overdue and band[0] > 60:
                plan.restructured_ago, restructure_overdue = 0, False
        elif status == LoanStatus.ACTIVE.value:
            if not recent_done:
                recent, recent_done = True, True
            elif restructure_active:
                plan.restructured_ago, restructure_active = 0, False
            elif concern:
                plan.reviewer_concern, concern = True, False
        _schedule(rng, plan, band, recent)
        ratings = GOOD_RATINGS if status in (LoanStatus.ACTIVE.value, LoanStatus.SETTLED.value) else POOR_RATINGS
        borrower.credit_rating = _weighted(rng, ratings)
        plans.append(plan)
    # One settled borrower came back for a new loan of the same kind (续贷) soon after repaying.
    settled = next((p for p in plans if p.status == LoanStatus.SETTLED.value and p.settled_ago > 2), None)
    at = next((i for i, p in enumerate(plans) if p.status == LoanStatus.ACTIVE.value and p.disbursed_ago > 6
               and p.restructured_ago is None and not p.reviewer_concern), None)
    if settled is not None and at is not None:
        renewal = _new_loan(rng, spec, settled.product, settled.borrower, LoanStatus.ACTIVE.value)
        renewal.guarantee_type, renewal.purpose = settled.guarantee_type, settled.purpose
        renewal.disbursed_ago = rng.randint(max(1, settled.settled_ago - 20), settled.settled_ago - 1)
        renewal.term_months = max(PRODUCTS[settled.product].terms)
        if _term_days(renewal.term_months) <= renewal.disbursed_ago + 10:
            renewal.term_months = 36
        plans[at] = renewal
    # Contract numbers follow the order of disbursement, as a branch's register does.
    for order, plan in enumerate(sorted(plans, key=lambda p: -p.disbursed_ago), start=1):
        plan.order = order
    return plans


def plan_province(spec: ProvinceSpec) -> dict[str, list[LoanPlan]]:
    rng = random.Random(f"{SEED}-loans-{spec.code}")
    people = BorrowerMaker(rng, spec)
    branches = [(county, branch) for county in spec.counties for branch in county.branches]
    n_overdue = 3 * len(branches)
    dpd_bands = [DPD_BANDS[i % len(DPD_BANDS)] for i in range(n_overdue)]
    rng.shuffle(dpd_bands)
    return {branch.code: plan_branch_loans(rng, spec, county, branch, i, people, dpd_bands)
            for i, (county, branch) in enumerate(branches)}


def contract_no(branch_code: str, order: int) -> str:
    return f"{branch_code}-JK-{order:04d}"


# --- writing ----------------------------------------------------------------------------

@dataclass
class SeedResult:
    institutions: int = 0
    users: int = 0
    borrowers: int = 0
    loans: int = 0
    skipped_loans: int = 0
    documents: int = 0
    inspections: int = 0
    lendings: int = 0
    logins: list[DemoUser] = field(default_factory=list)
    new_loans: list[Loan] = field(default_factory=list)


def ensure_institutions(spec: ProvinceSpec, result: SeedResult) -> None:
    def ensure(code: str, name: str, level: Level, parent: str | None = None, plugin: str | None = None) -> None:
        if get_institution(code) is None:
            institution = create_institution(None, code, name, level.value, parent)
            if plugin:
                set_union_plugin(None, institution, plugin)
            result.institutions += 1

    ensure(spec.code, spec.name, Level.PROVINCE, plugin=spec.plugin)
    county_parent = spec.code
    if spec.city:
        ensure(spec.city[0], spec.city[1], Level.CITY, spec.code)
        county_parent = spec.city[0]
    for county in spec.counties:
        ensure(county.code, county.name, Level.COUNTY, county_parent)
        for branch in county.branches:
            ensure(branch.code, branch.name, Level.BRANCH, county.code)


def ensure_users(staff: list[DemoUser], result: SeedResult) -> dict[str, User]:
    names = [u.username.lower() for u in staff]
    existing = {u.username.lower(): u for u in db.session.execute(
        select(User).where(func.lower(User.username).in_(names))).scalars()}
    shared_hash = None  # one hash for the one demo password: argon2 is slow by design
    for demo in staff:
        if demo.username.lower() in existing:
            continue
        shared_hash = shared_hash or hash_password(DEMO_PASSWORD)
        existing[demo.username.lower()] = create_user(None, demo.username, DEMO_PASSWORD, demo.institution_code,
                                                      [demo.role], demo.display_name, demo.department,
                                                      password_hash=shared_hash)
        result.users += 1
    result.logins += staff
    return existing


def write_branch_loans(county: CountySpec, branch_spec: BranchSpec, plans: list[LoanPlan],
                        users: dict[str, User], anchor: date, result: SeedResult) -> None:
    branch = get_institution(branch_spec.code)
    rules = rules_for(branch)
    b, c = branch_spec.code.lower(), county.code.lower()
    officers = [users.get(f"{b}_officer1"), users.get(f"{b}_officer2")]
    post_loan, director = users.get(f"{b}_postloan"), users.get(f"{b}_director")
    county_director = users.get(f"{c}_director")

    numbers = {contract_no(branch_spec.code, p.order): p for p in plans}
    have = set(db.session.execute(select(Loan.contract_no).where(Loan.contract_no.in_(numbers))).scalars())
    todo = [(no, p) for no, p in sorted(numbers.items()) if no not in have]
    result.skipped_loans += len(have)
    if not todo:
        return
    wanted_ids = {p.borrower.id_number for _no, p in todo}
    borrowers = {bw.id_number: bw for bw in db.session.execute(
        select(Borrower).where(Borrower.id_number.in_(wanted_ids))).scalars()}
    new_borrowers = 0
    for number, plan in todo:
        bp = plan.borrower
        borrower = borrowers.get(bp.id_number)
        if borrower is None:
            borrower = Borrower(kind=bp.kind, name=bp.name, id_number=bp.id_number, phone=bp.phone,
                                address=bp.address, credit_rating=bp.credit_rating, institution=branch)
            db.session.add(borrower)
            borrowers[bp.id_number] = borrower
            new_borrowers += 1
        loan = _build_loan(plan, number, borrower, branch, anchor)
        # 审贷分离: one officer investigates, the other reviews and the director approves;
        # above the branch's authority the director reviews and the county approves.
        originator = officers[plan.order % 2]
        other = officers[(plan.order + 1) % 2]
        loan.investigator = originator
        loan.officer = post_loan if plan.problem_loan else originator
        if _county_approves(rules, loan):
            loan.reviewer, loan.approver = director, county_director
        else:
            loan.reviewer, loan.approver = other, director
        loan.risk_class = _risk_class(rules, loan, plan, anchor)
        db.session.add(loan)
        result.new_loans.append(loan)
    db.session.flush()
    record_event(None, "demo.seed_loans", "institution", branch.code,
                 {"loans": len(todo), "borrowers": new_borrowers,
                  "contracts": [todo[0][0], todo[-1][0]]}, institution_id=branch.id)
    result.loans += len(todo)
    result.borrowers += new_borrowers


def _build_loan(plan: LoanPlan, number: str, borrower: Borrower, branch: Institution, anchor: date) -> Loan:
    disbursed = anchor - timedelta(days=plan.disbursed_ago)
    maturity = add_months(disbursed, plan.term_months)
    amount_fen = plan.amount_yuan * 100
    balance_fen = 0 if plan.balance_share == 0 else _round_down(plan.amount_yuan * plan.balance_share) * 100
    status, dpd, arrears = plan.status, 0, 0
    if status == LoanStatus.OVERDUE.value:
        # Past maturity: overdue since the maturity date; otherwise since the missed instalment.
        dpd = max(1, (anchor - maturity).days) if maturity < anchor else plan.dpd
    elif status == LoanStatus.WRITTEN_OFF.value:
        dpd = (anchor - maturity).days
    if dpd:
        arrears = round(balance_fen * float(plan.rate) / 100 * min(dpd, 360) / 360)
    return Loan(
        contract_no=number, borrower=borrower, branch=branch, product=plan.product,
        guarantee_type=plan.guarantee_type, amount_fen=amount_fen, balance_fen=balance_fen,
        rate_percent=plan.rate, disbursed_on=disbursed, maturity_on=maturity,
        payment_method=plan.payment_method, purpose=plan.purpose, status=status, days_past_due=dpd,
        interest_arrears_fen=arrears,
        restructured_on=anchor - timedelta(days=plan.restructured_ago) if plan.restructured_ago else None,
        settled_on=anchor - timedelta(days=plan.settled_ago) if plan.settled_ago else None,
    )


def _county_approves(rules, loan: Loan) -> bool:
    """Above the branch's authority: where the union's rules make a county person answer for
    the loan, or from the amount whose reports go to the county (50万元 by default)."""
    facts = loan_facts(loan)
    if any(person.level != Level.BRANCH.value for person in rules.responsibility_roles(facts).primary):
        return True
    return loan.amount_fen >= int(rules.settings["escalation_threshold_yuan"]) * 100


def _risk_class(rules, loan: Loan, plan: LoanPlan, anchor: date) -> str:
    """The union's floor, lowered to 关注 where the reviewer judged so (or after a
    restructured loan's observation period); never above the floor."""
    floor = rules.classify_risk(loan_facts(loan), anchor).floor
    if loan.status == LoanStatus.SETTLED.value:
        return floor
    judged = floor
    if plan.reviewer_concern or loan.restructured_on is not None:
        judged = RiskClass.SPECIAL_MENTION.value
    return max(floor, judged, key=RISK_ORDER.index)
