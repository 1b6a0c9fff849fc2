"""What Tune will restore: the trials in the newest ``experiment_state-*.json`` of an experiment directory.

Tune 2.60 writes the experiment state (its trials) and then each searcher's state into the driver's
staging directory, and copies both to storage in the background; neither write is atomic with the
other. A driver killed with SIGKILL can leave a searcher state one step older or newer than the trial
list ``Tuner.restore`` brings back: a trial the searcher waits for may be finished, failed, or unknown
to Tune. :func:`restored_trials` reads that trial list so the searcher can reconcile (see
``SearcherBase.restore_from_dir``). Only the fields it needs are read: ``trial_id``, ``status`` and
the run metadata's ``last_result``.
"""
from __future__ import annotations

import glob
import json
import os
from typing import Any

__all__ = ["restored_trials"]


def restored_trials(checkpoint_dir: str) -> dict[str, tuple[str, dict[str, Any] | None]] | None:
    """``{trial_id: (status, last_result)}`` of the newest experiment state in ``checkpoint_dir``, or
    ``None`` when there is none or it cannot be read (then nothing can be reconciled)."""
    paths = glob.glob(os.path.join(checkpoint_dir, "experiment_state-*.json"))
    if not paths:
        return None
    try:
        with open(max(paths), encoding="utf-8") as handle:
            state = json.load(handle)
        trials: dict[str, tuple[str, dict[str, Any] | None]] = {}
        for trial_json, metadata_json in state["trial_data"]:
            trial, metadata = json.loads(trial_json), json.loads(metadata_json)
            result = metadata.get("last_result")
            trials[str(trial["trial_id"])] = (str(trial["status"]), result if isinstance(result, dict) else None)
        return trials
    except (OSError, ValueError, KeyError, TypeError):
        return None
