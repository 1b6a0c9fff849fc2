"""Shared pytest setup: make the repository root importable however pytest is started."""
from __future__ import annotations

import sys
from pathlib import Path

# Test folders have no __init__.py; with a bare `pytest` (not `python -m pytest`) the repository root
# would otherwise not be on sys.path and `import spaces` would fail.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
