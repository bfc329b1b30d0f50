"""``flask seed-demo``: a demo portal to click through.

Three provincial unions, one per rules plugin (湖南 ``hunan``, 山东 ``shandong``, 示范省
``template`` with its city tier), two counties each with two or three branches, one login per
role and place, and 22 loans per branch (330 in all) with borrowers, products, ratings, dates,
overdue states and risk classes that fit together.

Every value comes from one ``random.Random`` per province with a fixed seed, so every run plans
the same data; dates count back from the day of the run. Rows that exist already (matched by
institution code, user name, ID number or contract number) are left as they are, so a second
run adds nothing. Institutions and users go through the account services (which write their
audit events); loans are written per branch with one audit event per branch.

- ``places``: the provinces, counties, branches, names and products (plain values).
- ``loans``: institutions, staff logins, borrowers and loans, planned and written.
- ``documents``: each loan's credit file, with the gaps a county has.
- ``history``: the post-loan and archive work done on them so far (inspections, warnings,
  classification reviews, snapshots, lendings).
- ``seed``: ``seed_demo`` and the command.

Documents and history are made only for loans written in this run, so a second run adds nothing.

Every demo login has the password ``DEMO_PASSWORD``; the command prints the logins at the end.
"""
