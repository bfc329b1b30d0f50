#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use (127.0.0.1:5432, database `test`) is up; start the
# local cluster when it is down and we may. Exit 0 if reachable, 1 if not.
set -u
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
ready && exit 0
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "Starting PostgreSQL $version …"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || pg_ctlcluster "$version" main start || true
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi
if ready; then
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null 2>&1 || true
  exit 0
fi
echo "PostgreSQL is not reachable on 127.0.0.1:5432." >&2
exit 1
