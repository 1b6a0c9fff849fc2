"""One experiment seed, split by name into independent per-component generators.

No code in hwnas touches a global RNG: a component asks for ``make_rng(seed, "supernet", "paths")``
and gets the same stream every time, whatever ran before it.
"""
from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["derive_seed", "make_rng", "torch_generator"]


def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit seed derived from ``seed`` and a path of names; stable across processes and versions."""
    text = "/".join([str(int(seed))] + [str(n) for n in names])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def make_rng(seed: int, *names: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *names))


def torch_generator(seed: int, *names: object):
    """A ``torch.Generator`` seeded from the same derivation (imported lazily: searchers need no torch)."""
    import torch

    gen = torch.Generator()
    gen.manual_seed(derive_seed(seed, *names))
    return gen
