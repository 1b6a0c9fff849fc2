"""The Ray and Tune environment every hwnas command that starts Ray sets first."""
from __future__ import annotations

import os

__all__ = ["quiet_ray"]


def quiet_ray() -> None:
    """Tune's own tables would drown hwnas's progress lines; errors are still printed. Values the user
    set in the environment win."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "1")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
