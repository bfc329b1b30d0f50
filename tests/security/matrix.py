"""The access matrix: for EVERY endpoint of the URL map, how to build its URL (and form) for an
object of a place, and which roles get through.

``tests/security/test_access_matrix.py`` requests each case as every role (``world.ROLES``) for
the objects of every place (``world.PLACES``) and expects:

- a role not in ``allowed``: 403 (or 404 for an object outside the user's subtree: a view may
  look the object up before the service checks the role);
- an allowed role, object outside the subtree: ``hidden`` (404 unless the case says otherwise);
  never 200, never 500, and the other place's names never on the page;
- an allowed role, object inside the subtree: ``ok`` (200 for pages; for a state-changing POST
  any answer a real user could get: done, refused for the object's state, or invalid input).

"Inside the subtree" is ``sees(role, place)`` (``world.visible`` unless a case says otherwise);
``scoped`` cases name an object of the place in their URL or form, ``per_place`` ones are lists
asked once per place (a filter naming the place's institution, a search for its names).
Every answer, refusals included, is read for the names of places outside the user's subtree.

A route that is in ``app.url_map`` and has no case here fails ``test_every_route_is_in_the_matrix``:
add it here. ``EXEMPT`` lists the few endpoints the matrix does not request, each with the test
that covers it instead.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

from tests.helpers.files import pdf_bytes

from .world import AS_OF, MARKERS, PLACE_USERS, PROVINCE, ROLE_USERS, ROLES, World, download_url, visible

ALL = frozenset(ROLES)
NOBODY: frozenset[str] = frozenset()
STAFF = frozenset({"loan_officer", "post_loan_officer", "branch_director"})   # LENDING_STAFF
ARCHIVE_VIEW = ALL - {"admin"}
ARCHIVE_READ = frozenset({"archivist", "branch_director", "auditor"})
ARCHIVIST = frozenset({"archivist"})
DIRECTOR = frozenset({"branch_director"})
MANAGERS = frozenset({"admin", "union_admin"})

PAGE_OK = frozenset({200})
REDIRECT = frozenset({302})
# A state-changing request an allowed user sends with an object in scope: done (redirect or
# page), or refused because of the object's state or the input, with a message.
POST_OK = frozenset({200, 201, 302, 303, 409, 422})


@dataclass(frozen=True)
class Case:
    endpoint: str
    method: str
    url: Callable[[World, str | None, str], str]     # (world, place or None, username) -> path
    allowed: frozenset[str]
    scoped: bool = True                                # the request names an object of a place
    per_place: bool = False                            # not scoped, but asked once per place
    data: Callable[[World, str | None], dict] | None = None
    ok: frozenset[int] | None = None                   # default: PAGE_OK for GET, POST_OK for POST
    hidden: frozenset[int] = frozenset({404})
    note: str = ""
    sees: Callable[[str, str], bool] = visible          # (role, place) -> in scope
    denied: frozenset[int] = frozenset({403})          # a role not allowed, object in scope

    @property
    def expected_ok(self) -> frozenset[int]:
        if self.ok is not None:
            return self.ok
        return PAGE_OK if self.method == "GET" else POST_OK

    @property
    def label(self) -> str:
        return f"{self.method} {self.endpoint}" + (f" [{self.note}]" if self.note else "")


def get(endpoint, url, allowed, *, scoped=True, ok=None, hidden=frozenset({404}), note="", sees=visible) -> Case:
    return Case(endpoint, "GET", url, allowed, scoped=scoped, per_place=not scoped, ok=ok, hidden=hidden, note=note,
                sees=sees)


def page(endpoint, path, allowed, *, ok=None, note="") -> Case:
    """A page that names no object (lists, forms, the home page)."""
    return Case(endpoint, "GET", lambda w, p, u: path, allowed, scoped=False, ok=ok, note=note)


def post(endpoint, url, allowed, data=None, *, scoped=True, ok=None, hidden=frozenset({404}), note="",
         sees=visible) -> Case:
    return Case(endpoint, "POST", url, allowed, scoped=scoped, data=data, ok=ok, hidden=hidden, note=note, sees=sees)


def province_visible(role: str, place: str) -> bool:
    """Whether the place's province itself (not just its rules) is in the user's subtree."""
    return role == "admin" or (role == "union_admin" and PROVINCE[place] == "P")


def union_visible(role: str, place: str) -> bool:
    """A union's rules are read by everyone of the province (and the operator)."""
    return role == "admin" or PROVINCE[place] == "P"


def _pdf_file(name: str = "扫描件.pdf"):
    return (io.BytesIO(pdf_bytes(f"matrix {name} {id(object())}")), name)


def _png_file():
    from .hostile import tiny_png
    return (io.BytesIO(tiny_png()), "现场照片.png")


def _download(w: World, p: str, u: str) -> str:
    """A link made for this user when the place is theirs; otherwise one made for someone of
    that place (links are bound to the user they were made for)."""
    role = next(r for r, name in ROLE_USERS.items() if name == u)
    owner = u if visible(role, p) else PLACE_USERS[p]["archivist"]
    return download_url(w, owner, p)


CASES: list[Case] = [
    # --- main, auth, static ---------------------------------------------------------------
    page("main.index", "/", ALL),
    page("main.health", "/healthz", ALL, note="public"),
    page("auth.login", "/login", ALL, ok=REDIRECT, note="signed in: back to the home page"),
    page("static", "/static/css/portal.css", ALL, note="public"),
    page("bootstrap.static", "/bootstrap/static/css/bootstrap.min.css", ALL, note="public"),
    Case("auth.set_language", "POST", lambda w, p, u: "/language/zh", ALL, scoped=False, data=lambda w, p: {"next": "/"},
         ok=REDIRECT, note="the user's own session only"),

    # --- accounts --------------------------------------------------------------------------
    page("accounts.institutions", "/org/", ALL),
    page("accounts.users", "/org/users", frozenset({"admin"})),

    # --- loans -----------------------------------------------------------------------------
    page("loans.loan_list", "/loans/", ALL),
    page("loans.loan_list", "/loans/?q=SEC-", ALL, note="search box"),
    get("loans.loan_detail", lambda w, p, u: f"/loans/{w[p].loan}", ALL),
    get("loans.borrower_detail", lambda w, p, u: f"/loans/borrowers/{w[p].borrower}", ALL),
    page("loans.import_page", "/loans/import", frozenset({"admin", "union_admin", "branch_director"})),
    Case("loans.import_page", "POST", lambda w, p, u: "/loans/import",
         frozenset({"admin", "union_admin", "branch_director"}), scoped=False,
         data=lambda w, p: {"dry_run": "y", "file": (io.BytesIO("合同编号\n".encode("utf-8-sig")), "loans.csv")},
         ok=frozenset({200, 422}), note="a dry run: writes nothing"),

    # --- rules -----------------------------------------------------------------------------
    page("rules.overview", "/rules/", ALL, ok=frozenset({200, 302})),
    get("rules.union", lambda w, p, u: f"/rules/{w[p].province}", ALL, sees=union_visible),
    post("rules.enable_plugin", lambda w, p, u: f"/rules/{w[p].province}/plugin", MANAGERS,
         data=lambda w, p: {"plugin": ""}, sees=union_visible),
    post("rules.save_settings", lambda w, p, u: f"/rules/{w[p].province}/settings", MANAGERS,
         data=lambda w, p: {}, sees=union_visible),

    # --- archive: overview, credit file, upload ------------------------------------------
    page("archive.index", "/archive/", ARCHIVE_VIEW),
    get("archive.by_number", lambda w, p, u: f"/archive/number/{w[p].archive_number}", ARCHIVE_VIEW, ok=REDIRECT),
    get("archive.credit_file", lambda w, p, u: f"/archive/borrowers/{w[p].borrower}", ARCHIVE_VIEW),
    get("archive.credit_file", lambda w, p, u: f"/archive/borrowers/{w[p].borrower}?removed=1", ARCHIVE_VIEW,
        note="removed documents too"),
    get("archive.upload", lambda w, p, u: f"/archive/borrowers/{w[p].borrower}/upload",
        STAFF | ARCHIVIST),
    post("archive.upload", lambda w, p, u: f"/archive/borrowers/{w[p].borrower}/upload", STAFF | ARCHIVIST,
         data=lambda w, p: {"doc_type": "loan_contract", "loan": "0", "files": [_pdf_file()]}),

    # --- archive: documents ----------------------------------------------------------------
    get("archive.document", lambda w, p, u: f"/archive/documents/{w[p].doc_archived}", ARCHIVE_VIEW),
    get("archive.document", lambda w, p, u: f"/archive/documents/{w[p].doc_collected}", ARCHIVE_VIEW,
        note="collected"),
    get("archive.document_open", lambda w, p, u: f"/archive/documents/{w[p].doc_archived}/open", ARCHIVE_READ,
        ok=REDIRECT, note="archived: readers only, others borrow"),
    get("archive.document_open", lambda w, p, u: f"/archive/documents/{w[p].doc_collected}/open?download=1",
        ARCHIVE_READ | STAFF | ARCHIVIST, ok=REDIRECT, note="collected: its collectors read it too"),
    get("archive.object_download", _download, ARCHIVE_VIEW, note="a signed link is bound to its user"),
    post("archive.document_sort", lambda w, p, u: f"/archive/documents/{w[p].doc_collected}/sort", ARCHIVIST),
    post("archive.document_file", lambda w, p, u: f"/archive/documents/{w[p].doc_collected}/file", ARCHIVIST),
    post("archive.document_archive", lambda w, p, u: f"/archive/documents/{w[p].doc_collected}/archive", ARCHIVIST,
         data=lambda w, p: {"shelf_location": "A-01"}),
    post("archive.document_discard", lambda w, p, u: f"/archive/documents/{w[p].doc_collected}/discard", ARCHIVIST,
         data=lambda w, p: {"reason": "重复扫描"}),
    post("archive.document_shelf", lambda w, p, u: f"/archive/documents/{w[p].doc_archived}/shelf", ARCHIVIST,
         data=lambda w, p: {"shelf_location": "B-02"}),

    # --- archive: lending ------------------------------------------------------------------
    page("archive.lending_list", "/archive/lending", ARCHIVE_VIEW),
    page("archive.lending_overdue", "/archive/lending/overdue", ARCHIVE_READ),
    page("archive.lending_register", "/archive/lending/register", ARCHIVE_READ),
    page("archive.lending_register", "/archive/lending/register?format=pdf&start=2020-01-01", ARCHIVE_READ,
         note="PDF export"),
    get("archive.lending_detail", lambda w, p, u: f"/archive/lending/{w[p].lending}", ARCHIVE_VIEW),
    post("archive.lending_new", lambda w, p, u: "/archive/lending/new", STAFF | ARCHIVIST,
         data=lambda w, p: {"volume_id": w[p].volume, "document_ids": [w[p].doc_archived], "medium": "digital",
                            "reason": "复核", "days": "5"}),
    post("archive.lending_new", lambda w, p, u: "/archive/lending/new", STAFF | ARCHIVIST,
         data=lambda w, p: {"volume_id": w[p].volume, "document_ids": [w[p].doc_archived]},
         note="from the credit file: the request form"),
] + [
    post("archive.lending_action", (lambda a: lambda w, p, u: f"/archive/lending/{w[p].lending}/{a}")(action),
         allowed, data=lambda w, p: {"note": "同意", "days": "5"}, note=action)
    for action, allowed in [
        ("approve", frozenset({"branch_director", "archivist"})),
        ("refuse", frozenset({"branch_director", "archivist"})),
        ("renew", frozenset({"branch_director", "archivist"})),
        ("withdraw", frozenset({"loan_officer"})),          # the requester only
        ("issue", ARCHIVIST),
        ("return", frozenset({"archivist", "loan_officer"})),  # the archivist, or the borrower of a digital copy
        ("remind", ARCHIVIST),
    ]
] + [
    # --- archive: transfers ----------------------------------------------------------------
    page("archive.transfer_list", "/archive/transfers", ARCHIVE_READ),
    page("archive.transfer_new", "/archive/transfers/new", ARCHIVIST),
    get("archive.transfer_new", lambda w, p, u: f"/archive/transfers/new?sender={w[p].institution}", ARCHIVIST,
        note="another sender"),
    post("archive.transfer_new", lambda w, p, u: "/archive/transfers/new", ARCHIVIST,
         data=lambda w, p: {"sender": w[p].institution, "receiver": w[p].county, "volume_ids": [w[p].volume],
                            "note": "移交"}),
    get("archive.transfer_detail", lambda w, p, u: f"/archive/transfers/{w[p].transfer}", ARCHIVE_READ),
    get("archive.transfer_pdf", lambda w, p, u: f"/archive/transfers/{w[p].transfer}/handover.pdf", ARCHIVE_READ),
] + [
    post("archive.transfer_action", (lambda a: lambda w, p, u: f"/archive/transfers/{w[p].transfer}/{a}")(action),
         allowed, note=action)
    for action, allowed in [("send", ARCHIVIST), ("cancel", ARCHIVIST),
                            ("receive", NOBODY)]  # only the receiving county's archivists
] + [
    # --- archive: holds --------------------------------------------------------------------
    page("archive.hold_list", "/archive/holds", ARCHIVE_READ),
    page("archive.hold_list", "/archive/holds?show=all", ARCHIVE_READ, note="lifted too"),
    post("archive.hold_list", lambda w, p, u: "/archive/holds", frozenset({"archivist", "branch_director"}),
         data=lambda w, p: {"kind": "audit", "reason": "审计保全", "volume_id": str(w[p].volume)},
         note="on a credit file"),
    post("archive.hold_list", lambda w, p, u: "/archive/holds", frozenset({"archivist", "branch_director"}),
         data=lambda w, p: {"kind": "legal", "reason": "诉讼", "contract_no": w[p].contract_b},
         hidden=frozenset({422}), note="on a loan by contract number: 'no such loan in your institution'"),
    post("archive.hold_lift", lambda w, p, u: f"/archive/holds/{w[p].hold}/lift",
         frozenset({"archivist", "branch_director"}), data=lambda w, p: {"reason": "解除保全"}),

    # --- archive: destruction --------------------------------------------------------------
    page("archive.destruction_lists", "/archive/destruction", STAFF | ARCHIVIST | {"auditor"}),
    post("archive.destruction_lists", lambda w, p, u: "/archive/destruction", ARCHIVIST,
         data=lambda w, p: {"institution": w[p].institution, "appraisal": "鉴定意见"},
         hidden=frozenset({422}), note="an institution outside the subtree is not among the choices"),
    get("archive.destruction_detail", lambda w, p, u: f"/archive/destruction/{w[p].destruction_list}",
        STAFF | ARCHIVIST | {"auditor"}),
    get("archive.destruction_pdf", lambda w, p, u: f"/archive/destruction/{w[p].destruction_list}/list.pdf",
        STAFF | ARCHIVIST | {"auditor"}),
] + [
    post("archive.destruction_action",
         (lambda a: lambda w, p, u: f"/archive/destruction/{w[p].destruction_list}/{a}")(action), allowed,
         data=lambda w, p: {"note": "意见", "document_ids": [w[p].doc_archived]}, note=action)
    for action, allowed in [
        ("add", ARCHIVIST), ("propose", ARCHIVIST), ("approve", DIRECTOR), ("reject", DIRECTOR),
        ("confirm", STAFF | ARCHIVIST), ("execute", ARCHIVIST),
        ("cancel", frozenset({"archivist", "branch_director"})),   # the proposer, or an approver
    ]
] + [
    post("archive.destruction_action", lambda w, p, u: f"/archive/destruction/{w[p].destruction_list}/remove",
         ARCHIVIST, data=lambda w, p: {"item_id": "1"}, ok=frozenset({404}), note="remove: no such item on the list"),

    # --- search ----------------------------------------------------------------------------
    get("search.search_page", lambda w, p, u: f"/search/?q={MARKERS[p]}", ARCHIVE_VIEW, scoped=False,
        note="each place's borrower name as the query"),
    get("search.search_page", lambda w, p, u: f"/search/?q={w[p].contract}", ARCHIVE_VIEW, scoped=False,
        note="each place's contract number as the query"),
    post("search.retry_extraction", lambda w, p, u: f"/search/documents/{w[p].doc_archived}/extract", ARCHIVIST),

    # --- post-loan: inspections ------------------------------------------------------------
    page("postloan.index", "/postloan/", ALL, ok=REDIRECT),
    page("postloan.inspections", "/postloan/inspections", ALL),
    page("postloan.inspections", "/postloan/inspections?view=branch", ALL, note="branch view"),
    page("postloan.inspection_calendar", "/postloan/inspections/calendar?month=2024-06&view=branch", ALL),
    get("postloan.inspection_detail", lambda w, p, u: f"/postloan/inspections/{w[p].inspection_open}", ALL),
    get("postloan.inspection_detail", lambda w, p, u: f"/postloan/inspections/{w[p].inspection_signed}", ALL,
        note="signed off"),
    get("postloan.inspection_report", lambda w, p, u: f"/postloan/inspections/{w[p].inspection_signed}/report.pdf",
        ALL),
    get("postloan.inspection_report", lambda w, p, u: f"/postloan/inspections/{w[p].inspection_submitted}/report.pdf",
        ALL, note="draft report"),
    post("postloan.record_inspection", lambda w, p, u: f"/postloan/inspections/{w[p].inspection_open}/record", STAFF,
         data=lambda w, p: {"method": "phone", "inspected_on": AS_OF.isoformat(), "conclusion": "正常"}),
    post("postloan.attach_to_inspection", lambda w, p, u: f"/postloan/inspections/{w[p].inspection_open}/attachments",
         STAFF, data=lambda w, p: {"files": [_png_file()]}),
    post("postloan.sign_off", lambda w, p, u: f"/postloan/inspections/{w[p].inspection_submitted}/sign-off", DIRECTOR,
         data=lambda w, p: {"opinion": "同意"}),
    post("postloan.return_for_correction", lambda w, p, u: f"/postloan/inspections/{w[p].inspection_submitted}/return",
         DIRECTOR, data=lambda w, p: {"reason": "补充照片"}),
    post("postloan.review_escalation",
         lambda w, p, u: f"/postloan/inspections/{w[p].inspection_signed}/escalation-review", NOBODY,
         data=lambda w, p: {"opinion": "已阅"}, note="only the county's reviewers"),
    post("postloan.start_inspection", lambda w, p, u: f"/postloan/loans/{w[p].loan}/inspections", STAFF,
         data=lambda w, p: {"kind": "routine"}),
    get("postloan.download_file", lambda w, p, u: f"/postloan/files/{w[p].report_file}", ALL),

    # --- post-loan: a loan, warnings, classification ---------------------------------------
    get("postloan.loan_page", lambda w, p, u: f"/postloan/loans/{w[p].loan_b}", ALL),
    page("postloan.warnings", "/postloan/warnings?status=", ALL),
    get("postloan.warning_detail", lambda w, p, u: f"/postloan/warnings/{w[p].warning}", ALL),
    post("postloan.act_on_warning", lambda w, p, u: f"/postloan/warnings/{w[p].warning}/act", STAFF,
         data=lambda w, p: {"action": "handle", "note": "电话联系"}),
    post("postloan.raise_warning", lambda w, p, u: f"/postloan/loans/{w[p].loan}/warnings", STAFF,
         data=lambda w, p: {"signal": "lost_contact", "details": "电话停机"}),
    page("postloan.classification_queue", "/postloan/classification", ALL),
    get("postloan.classification_review", lambda w, p, u: f"/postloan/classification/{w[p].review}", ALL),
    post("postloan.classification_review", lambda w, p, u: f"/postloan/classification/{w[p].review}",
         frozenset({"branch_director", "post_loan_officer"}), data=lambda w, p: {"decided": "loss", "reason": "失联"}),
    post("postloan.start_classification_review", lambda w, p, u: f"/postloan/loans/{w[p].loan_b}/classification",
         frozenset({"branch_director", "post_loan_officer"})),

    # --- post-loan: collection, notices, migration -----------------------------------------
    page("postloan.collection_page", "/postloan/collection", ALL),
    post("postloan.record_contact", lambda w, p, u: f"/postloan/loans/{w[p].loan_b}/contacts", STAFF,
         data=lambda w, p: {"channel": "call", "result": "reached", "contacted_on": AS_OF.isoformat()}),
    page("postloan.notices", "/postloan/notices?status=all", ALL),
    post("postloan.issue_notice", lambda w, p, u: f"/postloan/notices/{w[p].notice}/issue", STAFF),
    get("postloan.migration", lambda w, p, u: f"/postloan/migration?institution={w[p].institution}", ALL,
        scoped=False, note="another institution falls back to the user's own"),
    page("postloan.migration", "/postloan/migration?format=pdf&start=2024-05-01&end=2024-06-03", ALL,
         note="PDF export"),

    # --- post-loan: handovers ---------------------------------------------------------------
    page("postloan.handovers", "/postloan/handovers", ALL),
    page("postloan.new_handover", "/postloan/handovers/new", DIRECTOR),
    get("postloan.new_handover", lambda w, p, u: f"/postloan/handovers/new?from={w.user_id(PLACE_USERS[p]['officer'])}",
        DIRECTOR, note="an officer's open loans"),
    post("postloan.new_handover", lambda w, p, u: "/postloan/handovers/new", DIRECTOR,
         data=lambda w, p: {"from": w.user_id(PLACE_USERS[p]["officer"]), "to": w.user_id(PLACE_USERS[p]["post_loan"]),
                            "loan": [w[p].loan_b], "reason": "离职"}),
    get("postloan.handover_detail", lambda w, p, u: f"/postloan/handovers/{w[p].handover}", ALL),
    get("postloan.handover_list", lambda w, p, u: f"/postloan/handovers/{w[p].handover}/list.pdf", ALL),
    post("postloan.confirm_handover", lambda w, p, u: f"/postloan/handovers/{w[p].handover}/confirm",
         STAFF, data=lambda w, p: {"note": "本人已离职"}, note="the two officers, or a director"),
    post("postloan.cancel_handover", lambda w, p, u: f"/postloan/handovers/{w[p].handover}/cancel",
         STAFF, data=lambda w, p: {"reason": "撤回"}, note="the two officers, or a director"),

    # --- post-loan: closing -----------------------------------------------------------------
    post("postloan.settle", lambda w, p, u: f"/postloan/loans/{w[p].loan}/settle", STAFF,
         data=lambda w, p: {"settled_on": AS_OF.isoformat(), "note": "结清"}),
    get("postloan.request_write_off", lambda w, p, u: f"/postloan/loans/{w[p].loan_b}/write-off", STAFF),
    post("postloan.request_write_off", lambda w, p, u: f"/postloan/loans/{w[p].loan}/write-off", STAFF,
         data=lambda w, p: {"reason": "无法收回", "evidence": [_pdf_file("证据.pdf")]}),
    page("postloan.write_offs", "/postloan/write-offs", ALL),
    get("postloan.write_off_detail", lambda w, p, u: f"/postloan/write-offs/{w[p].write_off}", ALL),
    post("postloan.decide_write_off", lambda w, p, u: f"/postloan/write-offs/{w[p].write_off}/decide", NOBODY,
         data=lambda w, p: {"decision": "approve", "note": "同意"}, note="the county's director (baseline rules)"),
    get("postloan.evaluation", lambda w, p, u: f"/postloan/loans/{w[p].loan_b}/evaluation", ALL),
    post("postloan.evaluation", lambda w, p, u: f"/postloan/loans/{w[p].loan_b}/evaluation", STAFF,
         data=lambda w, p: {"outcome": "recovered", "management": "good", "summary": "总结"}),
]

AUDIT_ALL = ALL - {"admin"}                                      # audit.completeness
AUDIT_DESK = frozenset({"auditor", "archivist", "branch_director", "union_admin"})   # fixity, inspections, reports
AUDIT_INSPECT = frozenset({"auditor", "archivist", "branch_director"})


def _inst(path: str):
    """An audit page about the place's institution (the ``institution`` parameter)."""
    return lambda w, p, u: f"{path}{'&' if '?' in path else '?'}institution={w[p].institution}"


CASES += [
    # --- the audit workspace ----------------------------------------------------------------
    page("auditing.index", "/audit/", ALL, ok=REDIRECT),
    page("auditing.dashboard", "/audit/dashboard", ALL, note="the user's own institution"),
    get("auditing.dashboard", _inst("/audit/dashboard"), ALL),
    get("auditing.dashboard", _inst("/audit/dashboard?format=pdf"), ALL, note="PDF"),
    get("auditing.completeness", _inst("/audit/completeness"), AUDIT_ALL),
    get("auditing.completeness", _inst("/audit/completeness?format=pdf"), AUDIT_ALL, note="PDF"),
    get("auditing.completeness", _inst("/audit/completeness?format=xlsx"), AUDIT_ALL, note="XLSX"),
    get("auditing.completeness_loan", lambda w, p, u: f"/audit/completeness/loans/{w[p].loan}", AUDIT_ALL),
    get("auditing.fixity", _inst("/audit/fixity"), AUDIT_DESK),
    get("auditing.fixity_objects", _inst("/audit/fixity/objects"), AUDIT_DESK),
    post("auditing.fixity_verify", lambda w, p, u: "/audit/fixity/verify", frozenset({"auditor", "archivist"}),
         data=lambda w, p: {"institution": str(w[p].institution)}, note="records a fixity run"),
    get("auditing.inspections", _inst("/audit/inspections"), AUDIT_DESK),
    post("auditing.start_inspection", lambda w, p, u: "/audit/inspections/new", AUDIT_INSPECT,
         data=lambda w, p: {"target": str(w[p].institution), "sample_size": "2"}),
    get("auditing.inspection_detail", lambda w, p, u: f"/audit/inspections/{w[p].archive_inspection}", AUDIT_DESK),
    post("auditing.record_inspection", lambda w, p, u: f"/audit/inspections/{w[p].archive_inspection}", DIRECTOR,
         data=lambda w, p: {"findings": "抽查", "inspected_on": AS_OF.isoformat()}, note="only its recorder (the director)"),
    post("auditing.cancel_inspection", lambda w, p, u: f"/audit/inspections/{w[p].archive_inspection}/cancel",
         DIRECTOR, data=lambda w, p: {"reason": "选错机构"}, note="only its recorder (the director)"),
    get("auditing.reports", _inst("/audit/reports"), AUDIT_DESK),
] + [
    get("auditing.report", _inst(f"/audit/reports/{kind}.{fmt}"), allowed, note=f"{kind}.{fmt}")
    for kind, allowed in [("completeness", AUDIT_DESK), ("lending-register", AUDIT_INSPECT),
                          ("destruction-lists", AUDIT_INSPECT), ("inspections", AUDIT_DESK),
                          ("migration", AUDIT_DESK)]
    for fmt in ("pdf", "xlsx")
]

CASES += [
    # --- filters naming another place's institution or officer: ignored, never widening -------
    get("loans.loan_list", lambda w, p, u: f"/loans/?branch={w[p].institution}", ALL, scoped=False, note="?branch="),
    get("loans.loan_list", lambda w, p, u: f"/loans/?officer={w.user_id(PLACE_USERS[p]['officer'])}", ALL,
        scoped=False, note="?officer="),
    get("postloan.warnings", lambda w, p, u: f"/postloan/warnings?status=&branch={w[p].institution}", ALL,
        scoped=False, note="?branch="),
    get("postloan.inspections",
        lambda w, p, u: f"/postloan/inspections?view=branch&officer={w.user_id(PLACE_USERS[p]['officer'])}", ALL,
        scoped=False, note="?officer="),
    get("postloan.collection_page",
        lambda w, p, u: f"/postloan/collection?officer={w.user_id(PLACE_USERS[p]['officer'])}", ALL, scoped=False,
        note="?officer="),
    get("search.search_page", lambda w, p, u: f"/search/?q=借款&institution={w[p].institution}", ARCHIVE_VIEW,
        scoped=False, note="?institution="),
    get("archive.index", lambda w, p, u: f"/archive/?number={w[p].archive_number}", ARCHIVE_VIEW, ok=REDIRECT,
        hidden=REDIRECT, note="?number= redirects to archive.by_number, which is scoped"),

    # --- an object in scope, acted on with another place's object named in the form -----------
    post("archive.document_sort", lambda w, p, u: f"/archive/documents/{w['B1'].doc_collected}/sort", ARCHIVIST,
         data=lambda w, p: {"loan": str(w[p].loan_b)}, note="B1 document, the place's loan in the form"),
    post("archive.upload", lambda w, p, u: f"/archive/borrowers/{w['B1'].borrower}/upload", STAFF | ARCHIVIST,
         data=lambda w, p: {"doc_type": "loan_contract", "loan": "0", "version_of": str(w[p].doc_archived),
                            "files": [_pdf_file()]}, note="B1 credit file, a new version of the place's document"),
    post("archive.lending_new", lambda w, p, u: "/archive/lending/new", STAFF | ARCHIVIST,
         data=lambda w, p: {"volume_id": w["B1"].volume, "document_ids": [w[p].doc_archived], "medium": "digital",
                            "reason": "复核", "days": "5"}, note="B1 credit file, the place's document"),
    post("archive.transfer_new", lambda w, p, u: "/archive/transfers/new", ARCHIVIST,
         data=lambda w, p: {"sender": w["B1"].institution, "receiver": w["B1"].county, "volume_ids": [w[p].volume],
                            "note": "移交"}, note="sent by B1, the place's credit file"),
    post("archive.destruction_action", lambda w, p, u: f"/archive/destruction/{w['B1'].destruction_list}/add",
         ARCHIVIST, data=lambda w, p: {"document_ids": [w[p].doc_archived]}, note="B1 list, the place's document"),
    post("archive.destruction_action", lambda w, p, u: f"/archive/destruction/{w['B1'].destruction_list}/add",
         ARCHIVIST, data=lambda w, p: {"numbers": w[p].archive_number}, hidden=frozenset({422}),
         note="B1 list, the place's archive number: 'no such number in your institution'"),
    post("postloan.new_handover", lambda w, p, u: "/postloan/handovers/new", DIRECTOR,
         data=lambda w, p: {"from": w.user_id("officer"), "to": w.user_id(PLACE_USERS[p]["post_loan"]),
                            "loan": [w["B1"].loan_b], "reason": "离职"}, note="B1 loans to the place's officer"),
    post("auditing.fixity_verify", lambda w, p, u: "/audit/fixity/verify", frozenset({"auditor", "archivist"}),
         data=lambda w, p: {"institution": str(w[p].province_id)}, sees=province_visible,
         note="the place's whole union: above a branch's subtree"),
]

# Endpoints the matrix does not request, and where they are tested instead.
EXEMPT: dict[tuple[str, str], str] = {
    ("auth.login", "POST"): "signing in: tests/accounts/test_auth.py, and CSRF in tests/security/test_hardening.py",
    ("auth.logout", "POST"): ("ends the session the matrix runs in: tests/accounts/test_auth.py, CSRF in "
                              "test_hardening.py"),
}

# Auditors change nothing but their own audit records: the POST routes that make or change them
# (each checks that the record is the auditor's own: the matrix's records are kept by directors).
AUDITOR_OWN_RECORDS: frozenset[str] = frozenset({"auditing.fixity_verify", "auditing.start_inspection"})


def cases_by_key() -> dict[tuple[str, str], list[Case]]:
    found: dict[tuple[str, str], list[Case]] = {}
    for case in CASES:
        found.setdefault((case.endpoint, case.method), []).append(case)
    return found
