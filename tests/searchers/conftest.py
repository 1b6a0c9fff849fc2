"""Fixtures for the searcher tests; helpers live in ``searcher_testkit``."""
from __future__ import annotations

import pytest
from searcher_testkit import SEARCHER_KWARGS, ToyProblem


@pytest.fixture(params=sorted(SEARCHER_KWARGS))
def searcher_name(request: pytest.FixtureRequest) -> str:
    """Every registered searcher (a test checks that SEARCHER_KWARGS covers the registry)."""
    return request.param


@pytest.fixture
def toy() -> ToyProblem:
    return ToyProblem()
