"""EdgeTPU-space behaviour: choices, layout, group-size fitting, presets, settings, blocks, supernet."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spaces import ConfigError, InvalidEncodingError, count_madds, count_params, export_onnx, get_preset, onnx_parity
from spaces import LayerwiseArch
from spaces._layerwise import LayerwiseNet, LayerwiseSupernet
from spaces._edgetpu_nets import EdgeTPUParts
from spaces.edgetpu import BLOCK_TYPES, EdgeTPUSpace, IBNArgs
from spaces._edgetpu_nets import ElasticIBN

SMALL = EdgeTPUSpace.small_settings()
ROOT = Path(__file__).resolve().parents[2]


def small_space(**overrides: object) -> EdgeTPUSpace:
    return EdgeTPUSpace(**{**SMALL, **overrides})


def random_encodings(space: EdgeTPUSpace, n: int, seed: int) -> list[tuple[int, ...]]:
    return [space.sample(np.random.default_rng([seed, i])) for i in range(n)]


# ------------------------------------------------------------------------------------- choices, layout
def test_every_layer_offers_the_same_32_choices() -> None:
    space = EdgeTPUSpace()
    assert [d.name for d in space.dims] == [f"layer_{i:02d}" for i in range(19)]
    labels = space.dims[0].choices
    assert all(d.choices == labels for d in space.dims) and len(labels) == 32
    assert labels[:8] == (
        "ibn_dw_e4_k3", "ibn_dw_e4_k5", "ibn_dw_e8_k3", "ibn_dw_e8_k5",
        "ibn_fused_e4_k3", "ibn_fused_e4_k5", "ibn_fused_e8_k3", "ibn_fused_e8_k5",
    )  # fmt: skip
    assert labels[8:11] == ("ibn_grouped_e4_k3_g32", "ibn_grouped_e4_k3_g64", "ibn_grouped_e4_k3_g128")
    assert labels[-1] == "ibn_fused_grouped_e8_k5_g128"
    assert space.choice_index("ibn_fused_grouped", 4, 3, 64) == labels.index("ibn_fused_grouped_e4_k3_g64") == 21
    with pytest.raises(InvalidEncodingError, match="not an edgetpu choice"):
        space.choice_index("ibn_dw", 4, 3, 64)  # group sizes belong to grouped types only
    assert len(EdgeTPUSpace(group_sizes=[64]).dims[0].choices) == 8 + 2 * 4


def test_decoded_layout_of_variant_s() -> None:
    space = EdgeTPUSpace(variant="s")
    arch = space.decode([0] * 19)
    outs = [b.out_ch for b in arch.blocks]
    assert outs == [48] * 2 + [64] * 4 + [128] * 4 + [160] * 4 + [192] * 4 + [256]
    assert [b.in_ch for b in arch.blocks] == [24] + outs[:-1]
    assert [b.stride for b in arch.blocks] == [2, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    fixed = arch.fixed
    assert (fixed.stem_ch, fixed.stem_kernel, fixed.stem_stride) == (64, 5, 2)
    assert (fixed.top_ch, fixed.num_classes) == (1280, 1001)
    assert fixed.first == IBNArgs("ibn_fused", 64, 24, 1, 3, 1, None, 1)


def test_width_scales_every_conv() -> None:
    fixed = EdgeTPUSpace(variant="l", width_mult=0.5).fixed
    assert (fixed.stem_ch, fixed.stem_kernel, fixed.first.out_ch, fixed.top_ch) == (32, 7, 16, 704)


# ----------------------------------------------------------------------------------- group-size fitting
def test_groups_follow_the_group_size() -> None:
    space = EdgeTPUSpace(variant="s")  # layer_02: 48 -> 64, stride 2
    for block_type, e, g in [("ibn_grouped", 8, 32), ("ibn_fused_grouped", 4, 64), ("ibn_fused_grouped", 8, 128)]:
        args = space.decode([0, 0, space.choice_index(block_type, e, 3, g)] + [0] * 16).blocks[2]
        assert (args.hidden, args.group_size, args.effective_group_size, args.groups) == (48 * e, g, g, 48 * e // g)
        assert args.conv_in_per_group == (g if block_type == "ibn_grouped" else g // e)
    blocks = space.decode([space.choice_index("ibn_dw", 4, 3)] + [space.choice_index("ibn_fused", 4, 5)] * 18).blocks
    assert blocks[0].groups == 96 and blocks[1].groups == 1


def test_a_group_size_that_does_not_fit_is_mapped_as_documented() -> None:
    space = EdgeTPUSpace(variant="s")
    layer = 1  # 48 -> 48: hidden 192 with e4, 384 with e8
    g128 = space.choice_index("ibn_fused_grouped", 4, 3, 128)
    args = space.decode([0] + [g128] * 18).blocks[layer]
    assert (args.group_size, args.effective_group_size, args.groups) == (128, 64, 3)  # largest fitting size below
    assert space.choice_index("ibn_fused_grouped", 8, 3, 128) != g128
    # Of [48, 50, 200] only 48 divides hidden 96 (layer_00: in 24, e4): the larger sizes map down to it ...
    odd = EdgeTPUSpace(variant="s", group_sizes=[48, 50, 200])
    assert [odd.decode([odd.choice_index("ibn_grouped", 4, 3, g)] * 19).blocks[0].effective_group_size
            for g in (48, 50, 200)] == [48, 48, 48]  # fmt: skip
    # ... and with none fitting, the smallest fitting size >= min_group_size is built.
    none_fit = EdgeTPUSpace(variant="s", group_sizes=[40], min_group_size=33)
    args = none_fit.decode([none_fit.choice_index("ibn_fused_grouped", 4, 3, 40)] * 19).blocks[0]
    assert (args.hidden, args.group_size, args.effective_group_size) == (96, 40, 48)
    # Decoding stays one-to-one although the two choices build equal blocks.
    a, b = (space.decode([0] + [space.choice_index("ibn_fused_grouped", 4, 3, g)] * 18) for g in (64, 128))
    assert a != b and space.encode(a) != space.encode(b)
    assert a.blocks[1].groups == b.blocks[1].groups


def test_preset_group_sizes_all_fit() -> None:
    for variant in ("tiny", "xs", "s", "m", "l"):
        space, encoding = get_preset(f"mobilenet-edgetpu-v2-{variant}")
        assert all(b.group_size in (None, b.effective_group_size) for b in space.decode(encoding).blocks)


# ----------------------------------------------------------------------------------------------- presets
# reference/architectures.md, MobileNetEdgeTPUV2: (type, e, first block of its group) per searched block, g1..g6.
_F, _G, _D = "ibn_fused", "ibn_fused_grouped", "ibn_dw"
REFERENCE_BLOCKS = [
    [(_F, 8), (_G, 4)],
    [(_F, 8), (_G, 4), (_F, 4), (_G, 4)],
    [(_F, 8), (_D, 4), (_D, 4), (_D, 4)],
    [(_D, 8), (_D, 4), (_D, 4), (_D, 4)],
    [(_D, 8), (_D, 4), (_D, 4), (_D, 4)],
    [(_D, 8)],
]
GROUP_STRIDES = [2, 2, 2, 1, 2, 1]
TABLE = {  # filters g0..g6, stem channels, stem kernel, top channels
    "tiny": ((16, 32, 48, 80, 112, 160, 192), 32, 5, 1280),
    "xs": ((16, 32, 48, 96, 144, 160, 192), 32, 5, 1280),
    "s": ((24, 48, 64, 128, 160, 192, 256), 64, 5, 1280),
    "m": ((32, 64, 80, 160, 192, 240, 320), 64, 5, 1344),
    "l": ((32, 64, 96, 192, 240, 256, 384), 64, 7, 1408),
}
# Our counts (reference/architectures.md convention) of the presets at 224x224, 1001 classes. The authors
# publish none, so these are regression values, not a reproduction:
#   tiny 3,762,729 params / 512,449,280 MAdds     xs 4,462,697 / 707,483,392     s 5,987,737 / 1,198,003,968
#   m 8,464,233 / 1,835,638,784                   l 10,923,049 / 2,530,787,840
COUNTS = {
    "tiny": (3_762_729, 512_449_280),
    "xs": (4_462_697, 707_483_392),
    "s": (5_987_737, 1_198_003_968),
    "m": (8_464_233, 1_835_638_784),
    "l": (10_923_049, 2_530_787_840),
}


@pytest.mark.parametrize("variant", sorted(TABLE))
def test_preset_matches_the_reference_table(variant: str) -> None:
    space, encoding = get_preset(f"mobilenet-edgetpu-v2-{variant}")
    assert isinstance(space, EdgeTPUSpace)
    assert space.settings["variant"] == variant and space.settings["width_mult"] == 1.0
    assert space.input_shape == (1, 3, 224, 224) and space.settings["num_classes"] == 1001
    filters, stem, stem_kernel, top = TABLE[variant]
    rows = [row for group in REFERENCE_BLOCKS for row in group]
    if variant == "tiny":  # g2 blocks 0 and 2 and g3 block 0 are grouped
        rows[2], rows[4], rows[6] = (_G, 8), (_G, 4), (_G, 8)
    arch = space.decode(encoding)
    assert [(b.block_type, b.expansion) for b in arch.blocks] == rows
    assert all(b.kernel == 3 for b in arch.blocks)
    group_size = 128 if variant == "l" else 64
    assert [b.group_size for b in arch.blocks] == [group_size if t == _G else None for t, _ in rows]
    outs = [filters[g + 1] for g, group in enumerate(REFERENCE_BLOCKS) for _ in group]
    strides = [s if i == 0 else 1 for s, group in zip(GROUP_STRIDES, REFERENCE_BLOCKS) for i in range(len(group))]
    assert [b.out_ch for b in arch.blocks] == outs and [b.stride for b in arch.blocks] == strides
    fixed = arch.fixed
    assert (fixed.stem_ch, fixed.stem_kernel, fixed.stem_stride, fixed.top_ch) == (stem, stem_kernel, 2, top)
    assert (fixed.first.block_type, fixed.first.expansion, fixed.first.out_ch) == ("ibn_fused", 1, filters[0])


@pytest.mark.parametrize("variant", sorted(COUNTS))
def test_preset_counts(variant: str) -> None:
    space, encoding = get_preset(f"mobilenet-edgetpu-v2-{variant}")
    params, madds = COUNTS[variant]
    assert space.count(encoding) == {"params": params, "madds": madds}
    net = space.meta_build(encoding)
    assert count_params(net) == params and count_madds(net, space.input_shape) == madds


# ------------------------------------------------------------------------------------------- settings
def test_settings_are_complete_and_normalised() -> None:
    space = EdgeTPUSpace(width_mult=1, dropout=0, group_sizes=(128, 32, 64))
    assert space.settings == {
        "variant": "s", "width_mult": 1.0, "input_size": 224, "num_classes": 1001, "stem_stride": 2,
        "dropout": 0.0, "group_sizes": [32, 64, 128], "min_group_size": 32, "task": "classification", "head_depths": [512, 256, 256, 128],
    }  # fmt: skip
    assert space.candidate_id([0] * 19) == EdgeTPUSpace(dropout=0.0).candidate_id([0] * 19)
    assert space.candidate_id([0] * 19) != EdgeTPUSpace(variant="m", dropout=0.0).candidate_id([0] * 19)


@pytest.mark.parametrize(
    "setting, value",
    [
        ("variant", "xl"), ("variant", None), ("width_mult", 0), ("width_mult", float("inf")), ("width_mult", "1"),
        ("input_size", 8), ("input_size", 224.0), ("num_classes", 1), ("stem_stride", 4), ("dropout", 1.0),
        ("group_sizes", []), ("group_sizes", "32"), ("group_sizes", [16, 32]), ("group_sizes", [32, 32]),
        ("group_sizes", [32.0]), ("min_group_size", 0), ("min_group_size", True),
    ],
)  # fmt: skip
def test_bad_settings_raise_config_error(setting: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"space edgetpu setting '{setting}': must .*, got .*\. HINT: "):
        EdgeTPUSpace(**{setting: value})


def test_group_sizes_below_the_minimum_are_refused_not_dropped() -> None:
    with pytest.raises(ConfigError, match=r"group_sizes': must hold integers >= min_group_size \(64\), got \[32, 64, 128\]"):
        EdgeTPUSpace(min_group_size=64)
    assert EdgeTPUSpace(min_group_size=64, group_sizes=[64, 128]).settings["group_sizes"] == [64, 128]


def test_encode_rejects_foreign_block_args() -> None:
    space, other = small_space(), EdgeTPUSpace()
    with pytest.raises(InvalidEncodingError, match="other settings"):
        space.encode(other.decode([0] * 19))
    with pytest.raises(InvalidEncodingError, match="takes LayerwiseArch"):
        space.encode([0] * 19)  # type: ignore[arg-type]
    own = space.decode([0] * 19)
    bad = IBNArgs("ibn_dw", own.blocks[3].in_ch, own.blocks[3].out_ch, 6, 3, 1, None, own.blocks[3].in_ch * 6)
    tampered = LayerwiseArch(own.fixed, own.blocks[:3] + (bad,) + own.blocks[4:])
    with pytest.raises(InvalidEncodingError, match=r"layer_03 .*allowed choices: ibn_dw_e4_k3, ibn_dw_e4_k5"):
        space.encode(tampered)


# --------------------------------------------------------------------------------------------- blocks
def test_blocks_follow_the_reference() -> None:
    space = small_space(width_mult=1.0)  # layer_01: 32 -> 32, stride 1 (Tiny)
    types = [space.choice_index(t, 4, 5, 16 if "grouped" in t else None) for t in BLOCK_TYPES]
    nets = [space.build([0, c] + [0] * 17) for c in types]
    dw, fused, grouped, fgrouped = (net.blocks[1] for net in nets)
    assert dw.expand[0].weight.shape == (128, 32, 1, 1) and dw.conv[0].weight.shape == (128, 1, 5, 5)
    assert isinstance(fused.expand, torch.nn.Identity) and fused.conv[0].weight.shape == (128, 32, 5, 5)
    assert grouped.expand[0].weight.shape == (128, 32, 1, 1) and grouped.conv[0].groups == 8
    assert grouped.conv[0].weight.shape == (128, 16, 5, 5)
    assert isinstance(fgrouped.expand, torch.nn.Identity) and fgrouped.conv[0].groups == 8
    assert fgrouped.conv[0].weight.shape == (128, 4, 5, 5)
    for block in (dw, fused, grouped, fgrouped):
        assert block.residual and isinstance(block.conv[2], torch.nn.ReLU) and len(block.project) == 2
    net = nets[0]
    assert not net.blocks[0].residual and net.blocks[0].conv[0].stride == (2, 2)
    assert isinstance(net.first.conv, torch.nn.Identity) and isinstance(net.first.expand, torch.nn.Identity)
    assert net.first.project[0].weight.shape == (16, 32, 1, 1) and not net.first.residual
    assert net.stem[0].kernel_size == (5, 5) and isinstance(net.stem[2], torch.nn.ReLU)
    assert net.logits.bias is not None and net.logits.kernel_size == (1, 1) and net.logits.out_channels == 10
    assert not any("Hardswish" in type(m).__name__ or "Sigmoid" in type(m).__name__ for m in net.modules())


@pytest.mark.integration
def test_grouped_models_export_to_onnx() -> None:
    space = small_space()
    encoding = [space.choice_index(t, 8, 5, 16) for t in ("ibn_grouped", "ibn_fused_grouped")] * 9 + [0]
    model = space.build(encoding)
    with torch.no_grad():
        model.train()(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert onnx_parity(model, export_onnx(model, space.input_shape), space.input_shape, seed=0) < 1e-4


# ------------------------------------------------------------------------------------------- supernet
@pytest.fixture(scope="module")
def supernet_space() -> EdgeTPUSpace:
    return small_space(dropout=0.0)  # dropout would draw different masks in train mode


def test_supernet_holds_one_elastic_block_per_type(supernet_space: EdgeTPUSpace) -> None:
    supernet = supernet_space.build_supernet()
    assert isinstance(supernet, LayerwiseSupernet) and len(supernet.blocks) == 19
    for block, args in zip(supernet.blocks, supernet_space.decode([0] * 19).blocks):
        in_ch, out_ch = args.in_ch, args.out_ch
        assert list(block) == list(BLOCK_TYPES) and all(isinstance(b, ElasticIBN) for b in block.values())
        assert block["ibn_fused"].conv[0].weight.shape == (in_ch * 8, in_ch, 5, 5)
        assert block["ibn_dw"].conv[0].weight.shape == (in_ch * 8, 1, 5, 5)
        assert block["ibn_grouped"].conv[0].weight.shape == (in_ch * 8, 32, 5, 5)  # largest group size
        assert block["ibn_fused_grouped"].conv[0].weight.shape == (in_ch * 8, 8, 5, 5)  # 32 / e4
        assert block["ibn_dw"].project[0].weight.shape == (out_ch, in_ch * 8, 1, 1)


def test_choices_are_slices_of_their_types_block(supernet_space: EdgeTPUSpace) -> None:
    supernet = supernet_space.build_supernet()
    encoding = random_encodings(supernet_space, 1, seed=1)[0]
    model = supernet_space.extract(supernet, encoding)
    for block, shared, args in zip(model.blocks, supernet.blocks, supernet_space.decode(encoding).blocks):
        big = shared[args.block_type]
        h, k, w, c = args.hidden, args.kernel, args.conv_in_per_group, (5 - args.kernel) // 2
        assert torch.equal(block.conv[0].weight, big.conv[0].weight[:h, :w, c : c + k, c : c + k])
        assert block.conv[0].groups == args.groups
        assert torch.equal(block.conv[1].running_var, big.conv[1].running_var[:h])
        assert torch.equal(block.project[0].weight, big.project[0].weight[:, :h])
        if args.has_expand:
            assert torch.equal(block.expand[0].weight, big.expand[0].weight[:h])


@pytest.mark.parametrize("overrides", [{}, {"group_sizes": [8, 24, 48]}])  # the second maps many group sizes
def test_eval_supernet_equals_extracted_model(overrides: dict) -> None:
    space = small_space(**overrides)
    supernet = space.build_supernet(generator=torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(4)
    encodings = random_encodings(space, 12, seed=2)
    with torch.no_grad():  # spread the running stats over several paths first
        for encoding in encodings[:4]:
            supernet.train()(torch.randn(4, 3, 32, 32, generator=generator), encoding)
    supernet.eval()
    x = torch.randn(2, 3, 32, 32, generator=generator)
    for encoding in encodings:
        model = space.extract(supernet, encoding)
        assert not model.training
        with torch.no_grad():
            assert (model(x) - supernet(x, encoding)).abs().max() < 1e-6, encoding


def test_train_step_matches_the_extracted_model_and_touches_only_its_slices(supernet_space: EdgeTPUSpace) -> None:
    space = supernet_space
    supernet = space.build_supernet().train()
    encoding = random_encodings(space, 1, seed=5)[0]
    path = space.decode(encoding).blocks
    model = space.extract(supernet, encoding)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out = supernet(x, encoding)
    with torch.no_grad():
        assert torch.equal(out, model(x))  # same train-mode output; now compare the running-stat updates
    updated = space.extract(supernet, encoding).state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(updated[key], value, rtol=0, atol=1e-7, msg=key)
    out.logsumexp(1).sum().backward()
    for layer, (blocks, args) in enumerate(zip(supernet.blocks, path)):
        for block_type, block in blocks.items():
            if block_type != args.block_type:
                assert all(p.grad is None for p in block.parameters()), f"layer {layer} {block_type} got a gradient"
                continue
            mask = copy.deepcopy(block)
            with torch.no_grad():
                for tensor in mask.parameters():
                    tensor.zero_()
                for tensor in mask.sliced_state(args).values():
                    tensor.fill_(1)
            for (name, param), used in zip(block.named_parameters(), mask.parameters()):
                assert param.grad is not None and not param.grad[used == 0].any(), f"layer {layer} {name}"


@pytest.mark.parametrize("path", [[0] * 18, [0] * 18 + [32], [0] * 18 + [-1], [0.0] * 19])
def test_supernet_rejects_bad_paths(supernet_space: EdgeTPUSpace, path: list) -> None:
    supernet = supernet_space.build_supernet()
    with pytest.raises(InvalidEncodingError, match="supernet path"):
        supernet(torch.zeros(1, 3, 32, 32), path)


def test_extract_refuses_a_supernet_of_other_settings(supernet_space: EdgeTPUSpace) -> None:
    supernet = supernet_space.build_supernet()
    with pytest.raises(ConfigError, match="same settings"):
        small_space(group_sizes=[8, 16]).extract(supernet, [0] * 19)
    with pytest.raises(ValueError, match="does not fit the elastic"):
        supernet.blocks[0]["ibn_dw"](torch.zeros(1, 8, 8, 8), supernet.choices[1][0])  # another layer's choice


# ------------------------------------------------------------------------------------------- counting
@pytest.mark.parametrize(
    "settings",
    [
        {"variant": "l", "input_size": 224, "num_classes": 1001},
        {"variant": "tiny", "width_mult": 1.3, "input_size": 193, "num_classes": 7, "group_sizes": [40, 96]},
        {"variant": "xs", "width_mult": 0.5, "input_size": 17, "stem_stride": 1, "group_sizes": [8],
         "min_group_size": 8},
    ],
)  # fmt: skip
def test_analytic_counts_match_hooks_on_meta(settings: dict) -> None:
    space = EdgeTPUSpace(**settings)
    for encoding in random_encodings(space, 3, seed=7) + [(31 if len(space.dims[0].choices) == 32 else 0,) * 19]:
        net = space.meta_build(encoding)
        assert space.count(encoding) == {"params": count_params(net), "madds": count_madds(net, space.input_shape)}


def test_importing_spaces_does_not_import_torch() -> None:
    code = (
        "import sys, spaces; s, e = spaces.get_preset('mobilenet-edgetpu-v2-s'); s.count(e); "
        "sys.exit('torch' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
