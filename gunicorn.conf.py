"""gunicorn's settings for the portal; gunicorn reads this file from the working directory:

    gunicorn -b 127.0.0.1:8000 wsgi:app

**Sync workers, three per core** (6 on 2 cores; ``WEB_CONCURRENCY`` sets another number). A sync
worker answers one request at a time and takes the next connection only when it is free, so the
kernel hands each request to an idle process: first come, first served. With ``gthread`` workers
(threads in a few processes) a process keeps every keep-alive connection it once accepted, busy or
not, and its threads share one core by turns under Python's lock; under load some users waited
behind a crowded process while another sat idle (bench/load.md: with 20 users on 2 cores the
workers used 1.1 of the 2 cores, and every page's p95 was over 200 ms; sync workers used 1.9 and
brought every page under it). Three per core rather than one, so that a core has work while a
process waits for the database or the object store. Each worker is a whole process: its own
search caches (up to 192 MB of posting lists, docs/search.md), its own index drainer thread and,
unless ``XINDANG_RATELIMIT_STORAGE_URI`` names a shared store, its own count of sign-in attempts.

**Put a buffering reverse proxy in front** (nginx, which also ends TLS): a sync worker is held for
as long as its client takes to send a request or read a response; nginx does that for slow
clients and hands the worker whole requests (``proxy_request_buffering`` and ``proxy_buffering``,
both on by default).
"""
import os

# The cores this process may run on (a container's or taskset's limit, not the host's count).
workers = int(os.environ.get("WEB_CONCURRENCY") or 3 * len(os.sched_getaffinity(0)))
worker_class = "sync"
# The union-wide completeness report and large uploads to the object store take seconds; a
# worker silent for two minutes is stuck and is replaced.
timeout = 120
graceful_timeout = 30
