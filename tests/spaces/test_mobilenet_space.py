"""The ``mobilenet`` space: the MobileNetV2 / V3-Large presets, layouts, settings and the v2 supernet.

The shared contract (``test_space_contract.py``, ``test_space_export_integration.py``) runs this space
at its ``small_settings()``, which are v3-large; the v2-only paths (ReLU6, no SE, no head conv) are
checked here.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spaces import ConfigError, InvalidEncodingError, count_madds, count_params, export_onnx, get_preset, get_space
from spaces import LayerwiseArch
from spaces._layerwise import LayerwiseNet
from spaces._mobilenet_nets import MobileNetParts
from spaces.mobilenet import InvertedResidualArgs, MobileNetSpace

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 0.02

# Published counts at 224x224, 1000 classes (reference/architectures.md). MobileNetV2 1.0: 3.47M params
# (the paper's Table 4 figure without BN, "3.4M" in its ImageNet table) and 300M MAdds. MobileNetV3-Large
# 1.0: 5.4M params, 219M MAdds (Howard et al. 2019, Table 3); the paper rounds params to one decimal.
PUBLISHED = {"mobilenet-v2": (3.47e6, 300e6), "mobilenet-v3-large": (5.4e6, 219e6)}

# MobileNetV3-Large, Howard et al. 2019 Table 1, one row per bneck after the fixed first one:
# (kernel, expanded width, out channels, SE, activation, stride).
V3_TABLE = [
    (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1), (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1), (5, 960, 160, True, "hswish", 1),
]  # fmt: skip
# MobileNetV2, Sandler et al. 2018 Table 2: (t, c, n, s) after the stem (32) and the t=1 row.
V2_TABLE = [(6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def small(version: str = "v3-large", **overrides: object) -> MobileNetSpace:
    return MobileNetSpace(**{**MobileNetSpace.small_settings(), "version": version, **overrides})


def bn_moved(model: torch.nn.Module, space: MobileNetSpace, *forward_args: object) -> None:
    """Train-mode passes so that BN running stats leave their 0 / 1 init (and slicing bugs show)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(2):
            model.train()(torch.randn(4, *space.input_shape[1:], generator=generator), *forward_args)


# ------------------------------------------------------------------------------------------- presets
def test_both_presets_are_checked() -> None:
    from spaces import PRESETS

    assert {name for name, (space, _, _) in PRESETS.items() if space == "mobilenet"} == set(PUBLISHED)


def test_v3_large_preset_decodes_to_table_1() -> None:
    space, encoding = get_preset("mobilenet-v3-large")
    arch = space.decode(encoding)
    rows = [(b.kernel, b.hidden, b.out_ch, b.se, b.act, b.stride) for b in arch.blocks]
    assert rows == V3_TABLE
    assert [b.in_ch for b in arch.blocks] == [16] + [row[2] for row in V3_TABLE[:-1]]
    assert [b.expansion for b in arch.blocks] == [4, 3, 3, 3, 3, 6, 2.5, 2.3, 2.3, 6, 6, 6, 6, 6]
    assert [b.se_squeeze for b in arch.blocks if b.se] == [24, 32, 32, 120, 168, 168, 240, 240]
    fixed = arch.fixed
    assert (fixed.stem_ch, fixed.stem_stride, fixed.stem_act) == (16, 2, "hswish")
    assert fixed.first == InvertedResidualArgs(16, 16, 1, 3, 1, False, "relu") and fixed.first.residual
    assert (fixed.last_ch, fixed.last_act, fixed.head_ch, fixed.num_classes) == (960, "hswish", 1280, 1000)


def test_v2_preset_decodes_to_the_t_c_n_s_table() -> None:
    space, encoding = get_preset("mobilenet-v2")
    arch = space.decode(encoding)
    expected = [(t, c, s if i == 0 else 1) for t, c, n, s in V2_TABLE for i in range(n)]
    assert [(b.expansion, b.out_ch, b.stride) for b in arch.blocks] == expected
    assert all(b.kernel == 3 and not b.se and b.act == "relu6" and b.hidden == 6 * b.in_ch for b in arch.blocks)
    fixed = arch.fixed
    assert (fixed.stem_ch, fixed.stem_act, fixed.last_ch, fixed.last_act) == (32, "relu6", 1280, "relu6")
    assert fixed.head_ch is None
    assert fixed.first == InvertedResidualArgs(32, 16, 1, 3, 1, False, "relu6") and not fixed.first.residual
    assert space.encode(arch) == encoding == (space.choice_index(6, 3),) * 16


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_reproduces_published_counts(name: str) -> None:
    space, encoding = get_preset(name)
    counts = space.count(encoding)
    params, madds = PUBLISHED[name]
    assert abs(counts["params"] - params) <= TOLERANCE * params, counts
    assert abs(counts["madds"] - madds) <= TOLERANCE * madds, counts


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_counts_from_the_built_model(name: str) -> None:
    space, encoding = get_preset(name)
    net = space.meta_build(encoding)
    assert space.count(encoding) == {"params": count_params(net), "madds": count_madds(net, (1, 3, 224, 224))}


def test_candidate_ids_are_pinned() -> None:
    # Ids are stored in journals and caches: a change here silently orphans every existing result.
    space, encoding = get_preset("mobilenet-v3-large")
    assert space.candidate_id(encoding) == PINNED_V3_LARGE_ID
    assert small().candidate_id(small().default_encoding()) == PINNED_SMALL_ID


PINNED_V3_LARGE_ID = "ea5bf1bdbe2d5745"
PINNED_SMALL_ID = "9087b1ee2b0f29dc"


# -------------------------------------------------------------------------------------- the space
def test_choices_per_version() -> None:
    v2, v3 = MobileNetSpace(version="v2"), MobileNetSpace(version="v3-large")
    assert len(v2.dims) == 16 and len(v3.dims) == 14
    assert v2.dims[0].choices == ("t3k3", "t3k5", "t3k7", "t4k3", "t4k5", "t4k7", "t6k3", "t6k5", "t6k7")
    assert len(v3.dims[0].choices) == 30 and v3.dims[0].choices[:4] == ("t2.3k3", "t2.3k3SE", "t2.3k5", "t2.3k5SE")
    assert v3.dims[0].choices[-1] == "t6k7SE" and v3.choice_index(6, 7, True) == 29
    with pytest.raises(InvalidEncodingError, match="SE never"):
        v2.choice_index(6, 3, True)
    with pytest.raises(InvalidEncodingError, match=r"t in \(2.3, 2.5, 3, 4, 6\)"):
        v3.choice_index(5, 3)


@pytest.mark.parametrize(
    "version, width, stem, last, head",
    [("v2", 0.5, 16, 1280, None), ("v2", 1.4, 48, 1792, None), ("v3-large", 0.5, 8, 480, 1280),
     ("v3-large", 1.25, 24, 1200, 1600)],
)  # fmt: skip
def test_width_scaling_keeps_the_1280_layer_for_narrow_nets(
    version: str, width: float, stem: int, last: int, head: int | None
) -> None:
    fixed = MobileNetSpace(version=version, width_mult=width).fixed
    assert (fixed.stem_ch, fixed.last_ch, fixed.head_ch) == (stem, last, head)


def test_hidden_widths_round_like_mobilenet_v3() -> None:
    # 80 * 2.3 = 184 exactly; at width 0.35 (in = 8) both 2.3 and 2.5 round up to 24, never below 90%.
    assert InvertedResidualArgs(80, 80, 2.3, 3, 1, False, "hswish").hidden == 184
    assert InvertedResidualArgs(8, 8, 2.3, 3, 1, True, "relu").hidden == 24
    assert InvertedResidualArgs(8, 8, 2.3, 3, 1, True, "relu").se_squeeze == 8


@pytest.mark.parametrize(
    "setting, value",
    [
        ("version", "v3"), ("version", "V2"), ("version", "v3-small"), ("version", None),
        ("width_mult", 0), ("width_mult", "1.0"), ("input_size", 8), ("num_classes", 1),
        ("stem_stride", 3), ("dropout", 1.0),
    ],
)  # fmt: skip
def test_bad_settings_raise_config_error(setting: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"space mobilenet setting '{setting}': must be .*, got .*\. HINT: "):
        MobileNetSpace(**{setting: value})


def test_unknown_version_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="'version': must be one of v2, v3-large, got 'v1'"):
        get_space("mobilenet", version="v1")


def test_encode_rejects_foreign_block_args() -> None:
    space = small()
    with pytest.raises(InvalidEncodingError, match="other settings"):
        space.encode(small("v2").decode([0] * 16))
    with pytest.raises(InvalidEncodingError, match="takes LayerwiseArch"):
        space.encode([0] * 14)  # type: ignore[arg-type]
    own = space.decode([0] * 14)
    bad = InvertedResidualArgs(own.blocks[3].in_ch, own.blocks[3].out_ch, 5, 3, 1, False, "relu")
    tampered = LayerwiseArch(own.fixed, own.blocks[:3] + (bad,) + own.blocks[4:])
    with pytest.raises(InvalidEncodingError, match=r"layer_03 .*allowed choices: t2.3k3, t2.3k3SE"):
        space.encode(tampered)


def test_built_blocks_follow_the_papers() -> None:
    v3 = small(width_mult=1.0).build(get_preset("mobilenet-v3-large")[1])
    se_block = v3.blocks[9]  # 80 -> 112, t6 k3, SE, h-swish
    assert isinstance(se_block.dw[2], torch.nn.Hardswish) and isinstance(se_block.se.act, torch.nn.ReLU)
    assert isinstance(se_block.se.gate, torch.nn.Hardsigmoid) and se_block.se.reduce.weight.shape == (120, 480, 1, 1)
    assert v3.head.bias is not None and v3.first.residual and isinstance(v3.first.expand, torch.nn.Identity)
    v2 = small("v2").build([6] * 16)
    assert isinstance(v2.stem[2], torch.nn.ReLU6) and not hasattr(v2, "head") and not v2.first.residual
    assert v2.classifier.in_features == 1280 and len(v2.blocks[0].project) == 2  # linear projection


# ------------------------------------------------------------------------------- v2 supernet paths
def test_v2_supernet_path_equals_extracted_model() -> None:
    space = small("v2")
    supernet = space.build_supernet()
    encodings = [space.sample(np.random.default_rng(seed)) for seed in range(3)]
    for encoding in encodings:
        bn_moved(supernet, space, encoding)
    supernet.eval()
    x = torch.randn(2, *space.input_shape[1:], generator=torch.Generator().manual_seed(1))
    for encoding in encodings:
        model = space.extract(supernet, encoding)
        with torch.no_grad():
            torch.testing.assert_close(model(x), supernet(x, encoding), rtol=0, atol=1e-6)


def test_supernet_choices_are_slices_of_one_block() -> None:
    space = small(width_mult=1.0)
    supernet = space.build_supernet()
    block = supernet.blocks[0]  # 16 -> 24: hidden up to 96, kernel 7, SE squeeze up to 24
    assert block.dw[0].weight.shape == (96, 1, 7, 7) and block.se.reduce.weight.shape == (24, 96, 1, 1)
    args = space.decode([space.choice_index(2.5, 3, True)] + [0] * 13).blocks[0]  # hidden 40, squeeze 16
    state = block.sliced_state(args)
    assert state["dw.0.weight"].shape == (40, 1, 3, 3)
    assert state["dw.0.weight"].data_ptr() == block.dw[0].weight[:40, :, 2:5, 2:5].data_ptr()
    assert state["se.reduce.weight"].shape == (16, 40, 1, 1) and state["project.0.weight"].shape == (24, 40, 1, 1)
    no_se = block.sliced_state(space.decode([space.choice_index(4, 5)] + [0] * 13).blocks[0])
    assert not any(name.startswith("se.") for name in no_se)
    with pytest.raises(ValueError, match="does not fit"):
        block.sliced_state(InvertedResidualArgs(16, 24, 8, 3, 2, False, "relu"))


def test_extract_refuses_a_supernet_of_other_settings() -> None:
    with pytest.raises(ConfigError, match="same settings"):
        small().extract(small("v2").build_supernet(), [0] * 14)


def test_v2_counts_match_hooks() -> None:
    space = MobileNetSpace(version="v2", width_mult=0.75, input_size=97, num_classes=7)
    for encoding in [space.sample(np.random.default_rng(seed)) for seed in range(3)]:
        net = space.meta_build(encoding)
        assert space.count(encoding) == {"params": count_params(net), "madds": count_madds(net, space.input_shape)}


@pytest.mark.integration
def test_v2_onnx_export_matches_onnxruntime() -> None:
    import onnx

    from spaces import onnx_parity

    space = small("v2")
    model = space.build(space.sample(np.random.default_rng(0)))
    bn_moved(model, space)
    data = export_onnx(model, space.input_shape)
    assert onnx_parity(model, data, space.input_shape, seed=0) < 1e-4
    assert "Clip" in {node.op_type for node in onnx.load_from_string(data).graph.node}  # ReLU6


def test_decode_and_count_do_not_import_torch() -> None:
    code = (
        "import sys, spaces; s, e = spaces.get_preset('mobilenet-v2'); s.count(e); "
        "sys.exit('torch' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
