"""Audit workspace fixtures: a small union with hand-made credit files whose gaps are known
(``known_gaps``, built by auditing_helpers.py)."""
from __future__ import annotations

import pytest

from .auditing_helpers import KnownGaps, build_known_gaps


@pytest.fixture()
def known_gaps(app) -> KnownGaps:
    return build_known_gaps(app)
