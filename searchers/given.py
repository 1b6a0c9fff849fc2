"""A searcher that hands out a fixed list of architectures once: how a joint search's result is scored.

The joint search (TuNAS, ``search.mode: joint``) chooses its architectures while the supernet trains;
what is left for the search stage is to score them like any candidate, through the same Tune trials,
cache and journal. Not registered: a config names a searcher that searches.
"""
from __future__ import annotations

from typing import Any

from core.settings import REQUIRED, Setting
from core.validation import invalid

from ._base import Evaluation, GenerationalSearcher
from ._space import Chromosome

__all__ = ["GivenSearcher"]


def _encodings(where: str, value: Any, hint: str) -> list[list[int]]:
    """A :data:`core.settings.Check`: a non-empty list of encodings (lists of choice indices)."""
    ok = isinstance(value, (list, tuple)) and value and all(
        isinstance(e, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in e)
        for e in value)
    if not ok:
        raise invalid(where, "must be a non-empty list of encodings (lists of choice indices)", value, hint)
    return [list(e) for e in dict.fromkeys(tuple(e) for e in value)]


class GivenSearcher(GenerationalSearcher):
    """The ``candidates`` (distinct encodings, in order) as one generation, then ``FINISHED``."""

    name = "given"
    SETTINGS = (Setting("candidates", REQUIRED, _encodings, "e.g. [[0, 1, 2], [2, 1, 0]]"),)

    @classmethod
    def _budget(cls, settings: dict[str, Any]) -> int:
        return len(settings["candidates"])

    def _total_generations(self) -> int:
        return 1

    def _first_generation(self) -> list[Chromosome]:
        sizes = self._require_configured().sizes
        out = []
        for encoding in self._config["candidates"]:
            if len(encoding) != len(sizes) or any(i >= n for i, n in zip(encoding, sizes)):
                raise invalid("candidates", f"must fit the search space's {len(sizes)} decisions of sizes "
                              f"{list(sizes)}", encoding, "pass encodings of this space")
            out.append(tuple(encoding))
        self._seen.update(out)
        return out

    def _next_generation(self, evaluations: list[Evaluation], indices: list[int], last: bool) -> list[Chromosome]:
        return []
