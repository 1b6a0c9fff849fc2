"""Fixtures for the searcher tests; the helpers and the contract suite live in ``searchers.testing``."""
from __future__ import annotations

import pytest

# Before the import below: pytest rewrites the suite's asserts only if told before it is imported.
pytest.register_assert_rewrite("searchers.testing")

from searchers.testing import toy  # noqa: E402,F401  (a fixture for every module here)
