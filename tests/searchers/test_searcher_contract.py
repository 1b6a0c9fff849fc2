"""The contract every registered searcher keeps: the suite shipped as :mod:`searchers.testing`,
parametrised over the registry when pytest collects."""
from __future__ import annotations

from searchers.testing import *  # noqa: F401,F403
