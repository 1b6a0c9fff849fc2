"""Content digests: the one way hwnas names files and JSON payloads by what they hold.

``sha256`` in hex everywhere. Ids and fingerprints that users see (candidate ids, evaluator
fingerprints, cost-model digests) are the first :data:`SHORT` hex digits; file digests recorded in the
journal are whole.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

from .jsonio import canonical_json

__all__ = ["SHORT", "file_digest", "json_digest"]

#: Hex digits of a short digest (64 bits): candidate ids, evaluator fingerprints, model digests.
SHORT = 16


def file_digest(path: str | os.PathLike[str], *, length: int | None = None) -> str:
    """SHA-256 of a file's bytes in hex, read in 1 MiB chunks; the first ``length`` digits if given."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def json_digest(obj: Any, *, length: int | None = SHORT) -> str:
    """SHA-256 of ``obj``'s canonical JSON (sorted keys, no spaces): equal data, equal digest."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:length]
