"""The PostgreSQL server the tests use (``XINDANG_TEST_PG``), and schemas of their own on it.

Every run, worker and throw-away deployment gets its own schema, so that several test runs can
share the server at once.
"""
from __future__ import annotations

import os

from sqlalchemy import create_engine, text

PG_BASE = os.environ.get("XINDANG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ON_POSTGRES = os.environ.get("XINDANG_TEST_DB", "sqlite") == "postgresql"


def create_schema(schema: str) -> str:
    """Create ``schema`` afresh (dropping one left by an earlier run); the URL whose search path it is."""
    engine = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return schema_url(schema)


def schema_url(schema: str) -> str:
    return f"{PG_BASE}?options=-csearch_path%3D{schema}"


def drop_schemas(*schemas: str) -> None:
    engine = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for schema in schemas:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
