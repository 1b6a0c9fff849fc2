"""What every hwnas package shares: errors, registries, durable JSON, seeding, digests, validation.

``core`` is the bottom of the dependency graph: it imports no other hwnas package, and every other
package (``spaces``, ``trainers``, ``cluster``, ``searchers``, ``orchestrator``) may import it.
"""
from __future__ import annotations

from .digest import SHORT, file_digest, json_digest
from .errors import (
    ConfigError,
    DeviceError,
    ExperimentError,
    HwnasError,
    InvalidEncodingError,
    UnknownNameError,
)
from .jsonio import append_jsonl, canonical_json, read_json, read_jsonl, write_json_atomic
from .registry import Registry
from .seeding import derive_seed, make_rng, torch_generator
from .settings import REQUIRED, Setting, resolve_settings

__all__ = [
    "REQUIRED",
    "SHORT",
    "ConfigError",
    "DeviceError",
    "ExperimentError",
    "HwnasError",
    "InvalidEncodingError",
    "Registry",
    "Setting",
    "UnknownNameError",
    "append_jsonl",
    "canonical_json",
    "derive_seed",
    "file_digest",
    "json_digest",
    "make_rng",
    "read_json",
    "read_jsonl",
    "resolve_settings",
    "torch_generator",
    "write_json_atomic",
]
