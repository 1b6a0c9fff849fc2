"""Presets reproduce the published architectures (reference/architectures.md) and their counts."""
from __future__ import annotations

import pytest
import torch

from spaces import PRESETS, UnknownNameError, count_madds, count_params, get_preset
from spaces.moga import choice_index

# The (t, k, SE) rows of MoGA-A/B/C as printed in reference/architectures.md (seed 003, Table 1).
MOGA_ROWS = {
    "moga-a": "6,5,- 6,7,- 6,3,- 6,3,SE 3,3,SE 6,3,SE 6,3,- 6,7,- 3,7,SE 6,7,- 6,3,- 6,3,- 6,5,SE 6,5,SE",
    "moga-b": "3,3,- 3,3,- 6,7,- 3,3,- 6,5,- 6,3,SE 6,5,SE 3,3,- 6,7,SE 6,7,- 3,5,- 6,7,SE 6,7,SE 6,3,SE",
    "moga-c": "3,5,- 3,3,- 3,5,- 3,3,- 3,5,- 3,5,- 6,5,SE 3,5,- 3,5,- 6,3,- 6,3,SE 6,3,SE 6,3,SE 6,3,SE",
}
# Published params (truncated to one decimal by the paper) and MAdds.
PUBLISHED = {"moga-a": (5.1e6, 304e6), "moga-b": (5.5e6, 248e6), "moga-c": (5.4e6, 221e6)}
TOLERANCE = 0.02


def test_every_moga_preset_is_checked() -> None:
    assert {name for name, (space, _, _) in PRESETS.items() if space == "moga"} == set(PUBLISHED)


@pytest.mark.parametrize("name", sorted(MOGA_ROWS))
def test_moga_preset_encodes_the_published_rows(name: str) -> None:
    space, encoding = get_preset(name)
    rows = [cell.split(",") for cell in MOGA_ROWS[name].split()]
    assert encoding == tuple(choice_index(int(t), int(k), se == "SE") for t, k, se in rows)
    blocks = space.decode(encoding).blocks
    assert [(b.expansion, b.kernel, b.se) for b in blocks] == [(int(t), int(k), se == "SE") for t, k, se in rows]
    assert space.settings["input_size"] == 224 and space.settings["num_classes"] == 1000
    assert space.settings["width_mult"] == 1.0 and space.settings["stem_stride"] == 2


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_moga_preset_reproduces_published_counts(name: str) -> None:
    space, encoding = get_preset(name)
    counts = space.count(encoding)
    params, madds = PUBLISHED[name]
    # "5.1M" means [5.1M, 5.2M): widen that interval by the tolerance.
    assert params * (1 - TOLERANCE) <= counts["params"] < (params + 0.1e6) * (1 + TOLERANCE), counts
    assert abs(counts["madds"] - madds) <= TOLERANCE * madds, counts


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_moga_preset_counts_from_the_built_model(name: str) -> None:
    space, encoding = get_preset(name)
    net = space.meta_build(encoding)
    assert space.count(encoding) == {"params": count_params(net), "madds": count_madds(net, (1, 3, 224, 224))}


def test_unknown_preset_lists_the_known_ones() -> None:
    known = r"known presets: (.*, )?moga-a, moga-b, moga-c"  # other spaces' presets may sort before MoGA's
    with pytest.raises(UnknownNameError, match=rf"unknown preset 'moga-z'; {known}"):
        get_preset("moga-z")


def test_presets_are_read_only() -> None:
    with pytest.raises(TypeError):
        PRESETS["mine"] = ("moga", "0", {})  # type: ignore[index]
