"""MobileOne-specific behaviour: layout, folding exactness, folded counting, presets, supernet, settings."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from spaces import ConfigError, InvalidEncodingError, count_madds, count_params, export_onnx, get_preset, get_space
from spaces._mobileone_nets import ElasticMobileOneBlock, MobileOneBlock, MobileOneNet, MobileOneSupernet
from spaces.mobileone import BRANCH_CHOICES, WIDTH_CHOICES, MobileOneArchArgs, MobileOneBlockArgs, MobileOneSpace

SMALL = MobileOneSpace.small_settings()
ROOT = Path(__file__).resolve().parents[2]
# Table 7 of seed 002: (a1, a2, a3, a4), k, SE; published params (one decimal) and MAdds, 224x224.
PUBLISHED = {
    "mobileone-s0": ((0.75, 1.0, 1.0, 2.0), 4, False, 2.1e6, 275e6),
    "mobileone-s1": ((1.5, 1.5, 2.0, 2.5), 1, False, 4.8e6, 825e6),
    "mobileone-s2": ((1.5, 2.0, 2.5, 4.0), 1, False, 7.8e6, 1299e6),
    "mobileone-s3": ((2.0, 2.5, 3.0, 4.0), 1, False, 10.1e6, 1896e6),
    "mobileone-s4": ((3.0, 3.5, 3.5, 4.0), 1, True, 14.8e6, 2978e6),
}
TOLERANCE = 0.02


def small_space(**overrides: object) -> MobileOneSpace:
    return MobileOneSpace(**{**SMALL, **overrides})


def randomize_bn(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random affine parameters and running statistics in every BN, so that folding is really exercised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            n = bn.num_features
            bn.weight.copy_(torch.rand(n, generator=generator) + 0.5)
            bn.bias.copy_(torch.randn(n, generator=generator) * 0.2)
            bn.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            bn.running_var.copy_(torch.rand(n, generator=generator) * 2 + 0.5)
    return model


def max_relative_difference(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-12))


# ---------------------------------------------------------------------------------- dims and layout
def test_dims_and_labels() -> None:
    space = MobileOneSpace()
    assert [d.name for d in space.dims] == ["k", "a1", "a2", "a3", "a4", "se"]
    assert space.dims[0].choices == ("k1", "k2", "k3", "k4") and BRANCH_CHOICES == (1, 2, 3, 4)
    assert space.dims[1].choices == ("0.75x", "1x", "1.5x", "2x", "2.5x", "3x")
    assert space.dims[5].choices == ("no_se", "se")
    for stage, widths in enumerate(WIDTH_CHOICES):  # every published multiplier is a choice
        assert {row[0][stage] for row in PUBLISHED.values()} <= set(widths)


def test_decoded_layout_of_s0() -> None:
    space, encoding = get_preset("mobileone-s0")
    arch = space.decode(encoding)
    assert (arch.branches, arch.widths, arch.se) == (4, (0.75, 1.0, 1.0, 2.0), False)
    assert arch.stem == MobileOneBlockArgs(3, 48, kernel=3, stride=2, groups=1, branches=1, se=False)
    assert len(arch.blocks) == 2 * (2 + 8 + 10 + 1)
    depthwise, pointwise = arch.blocks[0::2], arch.blocks[1::2]
    assert all(b.kernel == 3 and b.groups == b.in_ch == b.out_ch and b.branches == 4 for b in depthwise)
    assert all(b.kernel == 1 and b.groups == 1 and b.stride == 1 for b in pointwise)
    assert [b.out_ch for b in pointwise] == [48] * 2 + [128] * 8 + [256] * 10 + [1024]
    strides = [b.stride for b in depthwise]
    assert strides == [2, 1] + [2] + [1] * 7 + [2] + [1] * 9 + [2]
    assert not any(b.se for b in arch.blocks)
    # The stem keeps min(64, 64 * a1) = 48 channels, so stage 1's first pointwise block has an identity branch.
    assert pointwise[0].has_skip and not depthwise[0].has_skip and not pointwise[2].has_skip


def test_s4_has_se_on_both_halves_of_the_last_blocks() -> None:
    space, encoding = get_preset("mobileone-s4")
    arch = space.decode(encoding)
    assert arch.stem.out_ch == 64
    se_blocks = [i for i, b in enumerate(arch.blocks) if b.se]
    # Network blocks 15..19 (stage 3's last five) and 20 (stage 4): MobileOne blocks 30..41.
    assert se_blocks == list(range(30, 42))
    with torch.device("meta"):
        net = MobileOneNet(arch)
    # SE squeeze int(C / 16) on the block's output: 896 (= 256 x 3.5) for the depthwise half, 2048 for the last.
    assert net.blocks[40].se.reduce.weight.shape == (56, 896, 1, 1)
    assert net.blocks[41].se.expand.weight.shape == (2048, 128, 1, 1) and net.blocks[41].se.expand.bias is not None


def test_block_branches() -> None:
    dw = MobileOneBlock(MobileOneBlockArgs(8, 8, kernel=3, stride=1, groups=8, branches=3, se=False))
    assert len(dw.convs) == 3 and dw.scale is not None and dw.skip is not None and not dw.is_folded
    assert dw.convs[0][0].weight.shape == (8, 1, 3, 3) and dw.scale[0].weight.shape == (8, 1, 1, 1)
    pw = MobileOneBlock(MobileOneBlockArgs(8, 16, kernel=1, stride=1, groups=1, branches=2, se=True))
    assert len(pw.convs) == 2 and pw.scale is None and pw.skip is None
    assert pw.convs[1][0].bias is None and pw.se.reduce.out_channels == 1


# ------------------------------------------------------------------------------------------ folding
@pytest.mark.parametrize(
    "args",
    [
        MobileOneBlockArgs(8, 8, kernel=3, stride=1, groups=8, branches=1, se=False),
        MobileOneBlockArgs(8, 8, kernel=3, stride=2, groups=8, branches=4, se=False),
        MobileOneBlockArgs(16, 16, kernel=3, stride=1, groups=16, branches=2, se=True),
        MobileOneBlockArgs(3, 8, kernel=3, stride=2, groups=1, branches=1, se=False),
        MobileOneBlockArgs(8, 8, kernel=3, stride=1, groups=1, branches=3, se=False),
        MobileOneBlockArgs(8, 16, kernel=1, stride=1, groups=1, branches=4, se=True),
        MobileOneBlockArgs(16, 16, kernel=1, stride=1, groups=1, branches=2, se=False),
    ],
    ids=lambda a: f"{a.in_ch}-{a.out_ch}-k{a.kernel}s{a.stride}g{a.groups}b{a.branches}{'se' if a.se else ''}",
)
def test_block_folds_exactly(args: MobileOneBlockArgs) -> None:
    block = randomize_bn(MobileOneBlock(args), seed=args.branches).eval()
    x = torch.randn(2, args.in_ch, 10, 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = block(x)
        block.reparameterize()
        actual = block(x)
    assert block.is_folded and len(block.convs) == 0 and block.scale is None and block.skip is None
    conv = block.reparam
    assert conv.bias is not None
    assert conv.weight.shape == (args.out_ch, args.in_ch // args.groups, args.kernel, args.kernel)
    assert (conv.stride, conv.groups) == ((args.stride, args.stride), args.groups)
    assert actual.shape == expected.shape and max_relative_difference(actual, expected) < 1e-4
    block.reparameterize()  # idempotent
    assert block.reparam is conv


def test_whole_model_folds_exactly_and_copies() -> None:
    space = small_space()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for seed in range(3):
        encoding = space.sample(np.random.default_rng(seed))
        model = randomize_bn(space.build(encoding), seed=seed).train()
        folded = model.inference_form()
        assert model.training and not model.is_folded  # the original is untouched
        assert folded.is_folded and not folded.training
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        with torch.no_grad():
            expected, actual = model.eval()(x), folded(x)
        assert max_relative_difference(actual, expected) < 1e-4, encoding
        assert model.reparameterize() is model and model.is_folded
        with torch.no_grad():
            assert max_relative_difference(model(x), expected) < 1e-4


def test_folding_does_not_touch_the_global_rng() -> None:
    model = small_space().build([1, 2, 3, 4, 5, 1])
    before = torch.random.get_rng_state()
    model.inference_form()
    assert torch.equal(before, torch.random.get_rng_state())


def test_onnx_export_is_the_folded_graph() -> None:
    space = small_space()
    encoding = [3, 1, 1, 1, 1, 1]  # k=4, SE on: 43 folded convs plus 2 per SE block
    model = randomize_bn(space.build(encoding), seed=0)
    graph = onnx.load_from_string(export_onnx(model, space.input_shape)).graph
    n_se = sum(b.se for b in space.decode(encoding).blocks)
    assert sum(node.op_type == "Conv" for node in graph.node) == 43 + 2 * n_se
    assert not any(node.op_type in ("BatchNormalization", "Add") for node in graph.node)
    assert model.training and not model.is_folded


# ----------------------------------------------------------------------------------------- counting
def test_counts_are_of_the_folded_form() -> None:
    space = small_space()
    encoding = [3, 5, 6, 5, 5, 1]
    model = space.build(encoding)
    folded = model.inference_form()
    expected = {"params": count_params(folded), "madds": count_madds(folded, space.input_shape)}
    assert space.count(encoding) == expected
    assert count_params(model) == expected["params"] < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "settings",
    [
        {"input_size": 224, "num_classes": 1000, "width_scale": 1.0},
        {"input_size": 97, "num_classes": 7, "width_scale": 0.3},
    ],
)
def test_analytic_counts_match_hooks_on_meta(settings: dict) -> None:
    space = MobileOneSpace(**settings)
    for encoding in [space.sample(np.random.default_rng(seed)) for seed in range(2)]:
        with torch.device("meta"):  # full-size models: fold and count shapes only
            net = MobileOneNet(space.decode(encoding))
        assert space.count(encoding) == {"params": count_params(net), "madds": count_madds(net, space.input_shape)}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_encodes_table_7(name: str) -> None:
    space, encoding = get_preset(name)
    widths, k, se, _, _ = PUBLISHED[name]
    arch = space.decode(encoding)
    assert (arch.widths, arch.branches, arch.se) == (widths, k, se)
    assert space.settings == {"input_size": 224, "num_classes": 1000, "width_scale": 1.0, "task": "classification", "head_depths": [512, 256, 256, 128]}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_reproduces_published_counts(name: str) -> None:
    space, encoding = get_preset(name)
    counts = space.count(encoding)
    *_, params, madds = PUBLISHED[name]
    # "2.1M" means [2.05M, 2.15M): widen that interval by the tolerance.
    assert (params - 0.05e6) * (1 - TOLERANCE) <= counts["params"] < (params + 0.05e6) * (1 + TOLERANCE), counts
    assert abs(counts["madds"] - madds) <= TOLERANCE * madds, counts


# ----------------------------------------------------------------------------------------- supernet
def test_supernet_blocks_hold_the_largest_choice() -> None:
    space = small_space()
    supernet = space.build_supernet()
    assert isinstance(supernet, MobileOneSupernet) and len(supernet.blocks) == 42
    assert all(isinstance(b, ElasticMobileOneBlock) and len(b.convs) == 4 for b in supernet.blocks)
    assert len(supernet.stem.convs) == 1 and supernet.stem.max_args.out_ch == 8  # min(64, 64 * 3.0) / 8
    assert supernet.blocks[-1].max_args.out_ch == 256 and supernet.classifier.in_features == 256
    assert supernet.blocks[1].skip is not None  # a1 <= 1 gives stage 1's first pointwise block a skip


def test_paths_are_leading_slices() -> None:
    space = small_space()
    supernet = randomize_bn(space.build_supernet(), seed=2)
    encoding = [1, 0, 2, 1, 3, 1]  # k=2, narrowest stage 1 (skip on its first pointwise block), SE on
    model = space.extract(supernet, encoding)
    for block, shared in zip([model.stem, *model.blocks], [supernet.stem, *supernet.blocks]):
        args, per_group = block.args, block.args.in_ch // block.args.groups
        assert len(block.convs) == args.branches
        for j, conv in enumerate(block.convs):
            assert torch.equal(conv[0].weight, shared.convs[j][0].weight[: args.out_ch, :per_group])
            assert torch.equal(conv[1].running_var, shared.convs[j][1].running_var[: args.out_ch])
        if block.skip is not None:
            assert torch.equal(block.skip.running_mean, shared.skip.running_mean[: args.out_ch])
        if args.se:
            s = args.se_squeeze
            assert torch.equal(block.se.reduce.weight, shared.se.reduce.weight[:s, : args.out_ch])
            assert torch.equal(block.se.expand.weight, shared.se.expand.weight[: args.out_ch, :s])
    assert model.blocks[1].skip is not None
    assert torch.equal(model.classifier.weight, supernet.classifier.weight[:, : model.classifier.in_features])


def test_eval_supernet_equals_extracted_model_in_both_forms() -> None:
    space = small_space()
    supernet = randomize_bn(space.build_supernet(generator=torch.Generator().manual_seed(3)), seed=3).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    encodings = [space.sample(np.random.default_rng(100 + s)) for s in range(4)] + [[3, 5, 6, 5, 5, 1], [0] * 6]
    for encoding in encodings:
        model = space.extract(supernet, encoding)
        assert not model.training and type(model) is MobileOneNet
        with torch.no_grad():
            expected, actual, folded = supernet(x, encoding), model(x), model.inference_form()(x)
        assert (actual - expected).abs().max() <= 1e-6 * expected.abs().max(), encoding
        assert max_relative_difference(folded, expected) < 1e-4, encoding


def test_train_mode_step_matches_the_extracted_model() -> None:
    space = small_space()
    supernet = space.build_supernet().train()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for seed in range(2):
        encoding = space.sample(np.random.default_rng(seed))
        model = space.extract(supernet, encoding)
        with torch.no_grad():
            torch.testing.assert_close(supernet(x, encoding), model(x), rtol=1e-5, atol=1e-6)
        updated = space.extract(supernet, encoding).state_dict()
        for key, value in model.state_dict().items():
            torch.testing.assert_close(updated[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_supernet_step_leaves_unused_branches_alone() -> None:
    space = small_space()
    supernet = space.build_supernet()
    path = [1, 0, 0, 0, 0, 0]  # k=2: branches 2 and 3 and all SE weights are unused
    supernet.train()(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), path).sum().backward()
    for block in supernet.blocks:
        assert block.convs[1][0].weight.grad is not None and block.convs[2][0].weight.grad is None
        assert all(p.grad is None for p in block.se.parameters())
    used = supernet.blocks[-1].max_args.out_ch, space.decode(path).blocks[-1].out_ch
    assert not supernet.blocks[-1].convs[0][0].weight.grad[used[1] :].any() and used[1] < used[0]


def test_supernet_and_extract_reject_bad_input() -> None:
    space = small_space()
    supernet = space.build_supernet()
    with pytest.raises(InvalidEncodingError, match="outside 0"):
        supernet(torch.zeros(1, 3, 32, 32), [4, 0, 0, 0, 0, 0])
    with pytest.raises(ConfigError, match="same settings"):
        small_space(width_scale=0.25).extract(supernet, [0] * 6)
    block, args = supernet.blocks[0], space.decode([0] * 6).blocks[0]
    for bad in (dataclasses.replace(args, stride=1), dataclasses.replace(args, branches=5)):
        with pytest.raises(ValueError, match="does not fit the elastic block"):
            block(torch.zeros(1, args.in_ch, 8, 8), bad)
    with pytest.raises(TypeError, match="not folded"):
        supernet.blocks[0].reparameterize()


# ---------------------------------------------------------------------------------- settings, codec
@pytest.mark.parametrize(
    "setting, value",
    [
        ("input_size", 16), ("input_size", 224.0), ("num_classes", 1), ("num_classes", True),
        ("width_scale", 0), ("width_scale", 0.01), ("width_scale", float("inf")), ("width_scale", "1"),
    ],
)  # fmt: skip
def test_bad_settings_raise_config_error(setting: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"space mobileone setting '{setting}': must be .*, got .*\. HINT: "):
        MobileOneSpace(**{setting: value})


def test_settings_are_complete_keyword_only_and_normalised() -> None:
    space = MobileOneSpace(width_scale=1)
    assert space.settings == {"input_size": 224, "num_classes": 1000, "width_scale": 1.0, "task": "classification", "head_depths": [512, 256, 256, 128]}
    assert type(space.settings["width_scale"]) is float
    assert get_space("mobileone", **SMALL).settings == small_space().settings
    with pytest.raises(TypeError):
        MobileOneSpace(224)  # type: ignore[misc]


def test_encode_rejects_foreign_block_args() -> None:
    space = small_space()
    with pytest.raises(InvalidEncodingError, match="takes MobileOneArchArgs"):
        space.encode([0] * 6)  # type: ignore[arg-type]
    with pytest.raises(InvalidEncodingError, match="not an architecture of this space"):
        space.encode(MobileOneSpace().decode([0] * 6))
    arch = space.decode([0] * 6)
    for bad in (dataclasses.replace(arch, branches=5), dataclasses.replace(arch, widths=(0.5, 1.0, 1.0, 2.0))):
        with pytest.raises(InvalidEncodingError, match="not an architecture"):
            space.encode(bad)
    assert isinstance(arch, MobileOneArchArgs)


def test_candidate_id_is_pinned() -> None:
    # Ids are stored in journals and caches: a change here silently orphans every existing result.
    space, encoding = get_preset("mobileone-s0")
    assert small_space().candidate_id([0] * 6) == PINNED_SMALL_ID
    assert space.candidate_id(encoding) == PINNED_S0_ID


PINNED_SMALL_ID = "1d818610ad256876"
PINNED_S0_ID = "8b86ca9c1ffd3222"


def test_importing_and_counting_does_not_import_torch() -> None:
    code = "import sys, spaces; spaces.get_space('mobileone').count([0] * 6); sys.exit('torch' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
