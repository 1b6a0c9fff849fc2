"""Fixtures shared by the search-space tests."""
from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """Run the tiny test models on one intra-op thread.

    On a 2-core runner that is also busy with other work, OpenMP threads spinning for a core make
    sub-millisecond kernels hundreds of times slower; one thread is faster for models this small.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
