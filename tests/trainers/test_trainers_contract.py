"""The dataset and task contracts (:mod:`trainers.testing`), run for every registered plugin."""
from __future__ import annotations

from trainers.testing import *  # noqa: F401,F403
