"""WSGI entry point: ``gunicorn wsgi:app``."""
import os

from portal import create_app

app = create_app(os.environ.get("XINDANG_CONFIG", "production"))
