"""Post-loan management (贷后管理): inspections on the union's schedule, early warnings,
five-category classification, overdue collection and notices, handover, closing and the daily
run. Every deadline and threshold is an answer of the union's rules plugin; see docs/postloan.md."""
