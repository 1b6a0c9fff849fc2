"""MoGA-specific behaviour: choice numbering, layout, width scaling, settings validation, supernet."""
from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spaces import ConfigError, InvalidEncodingError, MogaSpace, count_madds, count_params, get_space
from spaces._block_args import MBBlockArgs, make_divisible
from spaces._elastic import ElasticMBBlock
from spaces import LayerwiseArch
from spaces._layerwise import LayerwiseNet, LayerwiseSupernet
from spaces._moga_nets import MogaParts
from spaces.moga import CHOICES, choice_index

SMALL = MogaSpace.small_settings()
ROOT = Path(__file__).resolve().parents[2]


def small_space(**overrides: object) -> MogaSpace:
    return MogaSpace(**{**SMALL, **overrides})


def test_choice_labels_follow_table_1() -> None:
    assert CHOICES == (
        "t3k3", "t3k3SE", "t3k5", "t3k5SE", "t3k7", "t3k7SE",
        "t6k3", "t6k3SE", "t6k5", "t6k5SE", "t6k7", "t6k7SE",
    )  # fmt: skip
    for t in (3, 6):
        for k_index, k in enumerate((3, 5, 7)):
            for se in (False, True):
                assert choice_index(t, k, se) == 6 * (t == 6) + 2 * k_index + int(se)
    with pytest.raises(InvalidEncodingError, match="not a MoGA choice"):
        choice_index(4, 3, False)


def test_dims_are_fourteen_named_layers() -> None:
    space = MogaSpace()
    assert [d.name for d in space.dims] == [f"layer_{i:02d}" for i in range(14)]
    assert all(d.choices == CHOICES for d in space.dims)
    low, high = space.bounds
    assert low.tolist() == [0] * 14 and high.tolist() == [11] * 14


def test_decoded_layout_at_width_one() -> None:
    arch = MogaSpace().decode([11] * 14)
    outs = [b.out_ch for b in arch.blocks]
    assert outs == [24, 24, 40, 40, 40, 80, 80, 80, 80, 112, 112, 160, 160, 160]
    assert [b.in_ch for b in arch.blocks] == [16] + outs[:-1]
    assert [b.stride for b in arch.blocks] == [2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1]
    assert [b.act for b in arch.blocks] == ["relu"] * 5 + ["hswish"] * 9
    assert all((b.expansion, b.kernel, b.se) == (6, 7, True) for b in arch.blocks)
    fixed = arch.fixed
    assert (fixed.stem_ch, fixed.first_ch, fixed.last_ch, fixed.head_ch) == (16, 16, 960, 1280)
    assert (fixed.stem_stride, fixed.num_classes, fixed.dropout) == (2, 1000, 0.2)


@pytest.mark.parametrize(
    "width, stem, last, head", [(0.35, 8, 336, 1280), (0.5, 8, 480, 1280), (1.0, 16, 960, 1280), (1.25, 24, 1200, 1600)]
)
def test_width_scaling_and_head_rule(width: float, stem: int, last: int, head: int) -> None:
    fixed = MogaSpace(width_mult=width).fixed
    assert (fixed.stem_ch, fixed.last_ch, fixed.head_ch) == (stem, last, head)
    assert make_divisible(24 * width) == MogaSpace(width_mult=width).decode([0] * 14).blocks[0].out_ch


def test_mb_block_structure() -> None:
    """Spot-check one built block against the spec: expand, depthwise, SE on the hidden tensor, project."""
    net = small_space(width_mult=1.0).build([7] + [0] * 13)  # layer_00 = t6k3SE, 16 -> 24, stride 2
    block = net.blocks[0]
    assert block.expand[0].weight.shape == (96, 16, 1, 1)
    assert block.dw[0].weight.shape == (96, 1, 3, 3) and block.dw[0].stride == (2, 2)
    assert block.se.reduce.weight.shape == (24, 96, 1, 1) and block.se.reduce.bias is not None
    assert block.se.expand.weight.shape == (96, 24, 1, 1) and block.se.expand.bias is not None
    assert isinstance(block.se.act, torch.nn.ReLU) and not block.residual
    assert block.project[0].weight.shape == (24, 96, 1, 1) and len(block.project) == 2  # linear projection
    assert net.blocks[1].residual and isinstance(net.blocks[5].expand[2], torch.nn.Hardswish)
    assert net.head.bias is None and net.classifier.bias is not None


def test_settings_are_complete_and_normalised() -> None:
    space = MogaSpace(width_mult=1, dropout=0)
    expected = {"width_mult": 1.0, "input_size": 224, "num_classes": 1000, "stem_stride": 2, "dropout": 0.0}
    assert space.settings == {**expected, "task": "classification", "head_depths": [512, 256, 256, 128]} and type(space.settings["width_mult"]) is float
    # A classifier's identity is what it was before spaces had detection heads: candidate ids are kept.
    assert space.identity == {"space": "moga", "settings": expected}
    assert space.candidate_id([0] * 14) == "3132934f97309827"
    assert space.candidate_id([0] * 14) == MogaSpace(width_mult=1.0, dropout=0.0).candidate_id([0] * 14)
    assert space.candidate_id([0] * 14) != MogaSpace().candidate_id([0] * 14)
    assert get_space("moga", **SMALL).settings == small_space().settings


def test_candidate_id_is_pinned() -> None:
    # Ids are stored in journals and caches: a change here silently orphans every existing result.
    assert small_space().candidate_id([0] * 14) == PINNED_SMALL_ID
    assert MogaSpace().candidate_id([8, 10, 6, 7, 1, 7, 6, 10, 5, 10, 6, 6, 9, 9]) == PINNED_MOGA_A_ID


PINNED_SMALL_ID = "a3ff4ee01884413c"
PINNED_MOGA_A_ID = "fa5283d47de56e92"


@pytest.mark.parametrize(
    "setting, value",
    [
        ("width_mult", 0), ("width_mult", -1.0), ("width_mult", float("nan")), ("width_mult", "1.0"),
        ("width_mult", True), ("input_size", 8), ("input_size", 32.0), ("num_classes", 1),
        ("stem_stride", 3), ("stem_stride", 0), ("dropout", 1.0), ("dropout", -0.1), ("dropout", None),
    ],
)  # fmt: skip
def test_bad_settings_raise_config_error(setting: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"space moga setting '{setting}': must be .*, got .*\. HINT: "):
        MogaSpace(**{setting: value})


def test_settings_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        MogaSpace(1.0)  # type: ignore[misc]


def test_encode_rejects_foreign_block_args() -> None:
    space, other = small_space(), MogaSpace()
    arch = other.decode([0] * 14)
    with pytest.raises(InvalidEncodingError, match="other settings"):
        space.encode(arch)
    with pytest.raises(InvalidEncodingError, match="takes LayerwiseArch"):
        space.encode([0] * 14)  # type: ignore[arg-type]
    own = space.decode([0] * 14)
    bad_block = MBBlockArgs(own.blocks[3].in_ch, own.blocks[3].out_ch, 4, 3, 1, False, "relu")
    tampered = LayerwiseArch(own.fixed, own.blocks[:3] + (bad_block,) + own.blocks[4:])
    with pytest.raises(InvalidEncodingError, match=r"layer_03 .*allowed choices: t3k3, t3k3SE"):
        space.encode(tampered)


def test_out_of_range_message_names_layer_and_choices() -> None:
    with pytest.raises(InvalidEncodingError) as info:
        MogaSpace().parse("0-0-0-0-0-12-0-0-0-0-0-0-0-0")
    message = str(info.value)
    assert "layer_05 has choice 12, outside 0..11" in message and "0=t3k3" in message and "11=t6k7SE" in message


def test_models_take_decoded_args_only() -> None:
    space = small_space()
    arch = space.decode([3] * 14)
    net = LayerwiseNet(arch, MogaParts())
    assert net.arch == arch and count_params(net) == space.count([3] * 14)["params"]


def test_build_is_seeded_by_its_generator() -> None:
    space, encoding = small_space(), [5] * 14

    def weights(seed: int) -> torch.Tensor:
        return space.build(encoding, generator=torch.Generator().manual_seed(seed)).blocks[0].expand[0].weight

    assert torch.equal(weights(1), weights(1)) and not torch.equal(weights(1), weights(2))


def test_supernet_shares_one_block_per_layer() -> None:
    space = small_space()
    supernet = space.build_supernet()
    assert isinstance(supernet, LayerwiseSupernet) and len(supernet.blocks) == 14
    largest = space.decode([11] * 14).blocks  # t6k7SE holds every other choice
    assert all(isinstance(b, ElasticMBBlock) and b.max_args == a for b, a in zip(supernet.blocks, largest))
    assert count_params(supernet) == count_params(space.build([11] * 14))


def test_supernet_is_seeded_by_its_generator_only() -> None:
    space = small_space()
    before = torch.random.get_rng_state()
    first, again, other = (space.build_supernet(generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert torch.equal(before, torch.random.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert not torch.equal(first.blocks[0].dw[0].weight, other.blocks[0].dw[0].weight)


def test_choices_are_slices_of_the_shared_block() -> None:
    """t, k and SE pick leading hidden channels, the centre of the 7x7 kernel and leading SE channels."""
    space = small_space()
    supernet = space.build_supernet()
    encoding = [1] * 7 + [9] * 7  # t3k3SE, then t6k5SE
    model = space.extract(supernet, encoding)
    for block, shared, args in zip(model.blocks, supernet.blocks, space.decode(encoding).blocks):
        h, s, k = block.expand[0].out_channels, block.se.reduce.out_channels, block.dw[0].kernel_size[0]
        c = (7 - k) // 2
        assert (h, s, k) == (shared.max_args.in_ch * args.expansion, h // 4, args.kernel)
        assert torch.equal(block.expand[0].weight, shared.expand[0].weight[:h])
        assert torch.equal(block.expand[1].running_var, shared.expand[1].running_var[:h])
        assert torch.equal(block.dw[0].weight, shared.dw[0].weight[:h, :, c : c + k, c : c + k])
        assert torch.equal(block.dw[1].bias, shared.dw[1].bias[:h])
        assert torch.equal(block.se.reduce.weight, shared.se.reduce.weight[:s, :h])
        assert torch.equal(block.se.reduce.bias, shared.se.reduce.bias[:s])
        assert torch.equal(block.se.expand.weight, shared.se.expand.weight[:h, :s])
        assert torch.equal(block.se.expand.bias, shared.se.expand.bias[:h])
        assert torch.equal(block.project[0].weight, shared.project[0].weight[:, :h])
        assert torch.equal(block.project[1].weight, shared.project[1].weight)


def _used_masks(block: ElasticMBBlock, args: MBBlockArgs) -> dict[str, torch.Tensor]:
    """1 where ``args`` reads ``block``'s parameters and buffers, 0 elsewhere, by state-dict name."""
    mask = copy.deepcopy(block)
    with torch.no_grad():
        for tensor in [*mask.parameters(), *mask.buffers()]:
            tensor.zero_()
        for tensor in mask.sliced_state(args).values():
            tensor.fill_(1)
    return {**dict(mask.named_parameters()), **dict(mask.named_buffers())}


def test_supernet_step_touches_only_the_used_slices() -> None:
    space = small_space()
    supernet = space.build_supernet()
    path = [0, 11, 3, 6, 10, 1, 4, 8, 2, 7, 9, 5, 0, 11]
    before = copy.deepcopy(supernet.state_dict())
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.1)  # no momentum / decay: untouched means unchanged
    optimizer.zero_grad(set_to_none=True)
    supernet.train()(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)), path).sum().backward()
    optimizer.step()
    after = supernet.state_dict()
    for layer, (block, choices, index) in enumerate(zip(supernet.blocks, supernet.choices, path)):
        args = choices[index]
        masks = _used_masks(block, args)
        for name, param in block.named_parameters():
            if name.startswith("se.") and not args.se:
                assert param.grad is None, f"layer {layer} {name}: SE weights got a gradient without SE"
            else:
                assert param.grad is not None and (param.grad * masks[name]).abs().sum() > 0, f"layer {layer} {name}"
                assert not param.grad[masks[name] == 0].any(), f"layer {layer} {name}: gradient outside the slice"
        for name in (*masks,):
            key, unused = f"blocks.{layer}.{name}", masks[name] == 0
            if "num_batches_tracked" not in name:
                assert torch.equal(after[key][unused], before[key][unused]), f"layer {layer} {name} changed"
        for bn in ("expand.1", "dw.1", "project.1"):  # the used running stats did move
            key, used = f"blocks.{layer}.{bn}.running_mean", masks[f"{bn}.running_mean"] == 1
            assert not torch.equal(after[key][used], before[key][used]), f"layer {layer} {bn} stats did not move"
            assert after[f"blocks.{layer}.{bn}.num_batches_tracked"] == 1


def test_train_mode_step_matches_the_extracted_model() -> None:
    """A train-mode pass gives the same output and running-stat updates as the stand-alone model."""
    space = small_space(dropout=0.0)  # dropout would draw different masks
    supernet = space.build_supernet().train()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for seed in range(3):
        encoding = space.sample(np.random.default_rng(seed))
        model = space.extract(supernet, encoding)
        with torch.no_grad():
            assert torch.equal(supernet(x, encoding), model(x))
        updated = space.extract(supernet, encoding).state_dict()
        for key, value in model.state_dict().items():
            torch.testing.assert_close(updated[key], value, rtol=0, atol=1e-7, msg=key)


@pytest.mark.parametrize("extra", [[], [[0] * 14, [11] * 14]])
def test_eval_supernet_equals_extracted_model(extra: list) -> None:
    space = small_space()
    supernet = space.build_supernet(generator=torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():  # spread the running stats over several paths first
        for seed in range(6):
            supernet.train()(torch.randn(8, 3, 32, 32, generator=generator), space.sample(np.random.default_rng(seed)))
    supernet.eval()
    x = torch.randn(3, 3, 32, 32, generator=generator)
    encodings = extra or [space.sample(np.random.default_rng(100 + seed)) for seed in range(20)]
    for encoding in encodings:
        model = space.extract(supernet, encoding)
        assert not model.training
        with torch.no_grad():
            expected, actual = supernet(x, encoding), model(x)
        assert (actual - expected).abs().max() < 1e-6, encoding


def test_single_path_bn_recalibration_matches_the_extracted_model() -> None:
    """Cumulative (momentum None) BN statistics of one path are exact in the supernet too."""
    space = small_space()
    supernet, encoding = space.build_supernet(), space.sample(np.random.default_rng(5))
    model = space.extract(supernet, encoding)
    generator = torch.Generator().manual_seed(6)
    batches = [torch.randn(8, 3, 32, 32, generator=generator) for _ in range(3)]
    for net in (supernet, model):
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.reset_running_stats()
            bn.momentum = None
        with torch.no_grad():
            for batch in batches:
                net.train()(batch, encoding) if net is supernet else net.train()(batch)
    recalibrated = space.extract(supernet, encoding).state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(recalibrated[key], value, rtol=0, atol=1e-6, msg=key)


def test_elastic_block_rejects_a_choice_that_does_not_fit() -> None:
    supernet = small_space().build_supernet()
    block, args = supernet.blocks[1], supernet.choices[1][0]
    for bad in (
        dataclasses.replace(args, kernel=9), dataclasses.replace(args, kernel=4),
        dataclasses.replace(args, expansion=7), dataclasses.replace(args, stride=2),
    ):
        with pytest.raises(ValueError, match="does not fit the elastic block"):
            block(torch.zeros(1, args.in_ch, 8, 8), bad)


@pytest.mark.parametrize("path", [[0] * 13, [0] * 13 + [12], [0] * 13 + [-1], [0.0] * 14])
def test_supernet_rejects_bad_paths(path: list) -> None:
    supernet = small_space().build_supernet()
    with pytest.raises(InvalidEncodingError, match="supernet path"):
        supernet(torch.zeros(1, 3, 32, 32), path)


def test_extract_refuses_a_supernet_of_other_settings() -> None:
    supernet = small_space().build_supernet()
    with pytest.raises(ConfigError, match="same settings"):
        small_space(width_mult=0.5).extract(supernet, [0] * 14)
    with pytest.raises(InvalidEncodingError):
        small_space().extract(supernet, [12] * 14)


def test_extracted_model_is_independent_of_the_supernet() -> None:
    space = small_space()
    supernet = space.build_supernet()
    model = space.extract(supernet, [1] * 14)
    assert model.training
    with torch.no_grad():
        model.blocks[0].expand[0].weight.add_(1.0)
    hidden = model.blocks[0].expand[0].out_channels
    assert not torch.equal(model.blocks[0].expand[0].weight, supernet.blocks[0].expand[0].weight[:hidden])


@pytest.mark.parametrize(
    "settings",
    [
        {"width_mult": 1.0, "input_size": 224, "num_classes": 1000, "stem_stride": 2},
        {"width_mult": 1.3, "input_size": 193, "num_classes": 7, "stem_stride": 2},
        {"width_mult": 0.5, "input_size": 17, "num_classes": 2, "stem_stride": 1},
    ],
)
def test_analytic_counts_match_hooks_on_meta(settings: dict) -> None:
    space = MogaSpace(**settings)
    for encoding in [space.sample(np.random.default_rng(seed)) for seed in range(3)] + [(11,) * 14]:
        net = space.meta_build(encoding)
        expected = {"params": count_params(net), "madds": count_madds(net, space.input_shape)}
        assert space.count(encoding) == expected


def test_count_is_fast() -> None:
    space = small_space()
    encodings = [space.sample(np.random.default_rng(seed)) for seed in range(50)]
    start = time.perf_counter()
    for encoding in encodings:
        space.count(encoding)
    assert (time.perf_counter() - start) / len(encodings) < 0.05


def test_importing_spaces_does_not_import_torch() -> None:
    # Searchers and the CLI import spaces to decode and count; torch costs ~1 s of start-up there.
    code = "import sys, spaces; spaces.MogaSpace().count([0] * 14); sys.exit('torch' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# ---------------------------------------------------------------------- supernet.kernel_weights: per_kernel
def test_per_kernel_weights_keep_each_kernel_size_apart() -> None:
    """A 3x3 choice trains its own depthwise weights, never the centre of the 7x7 ones, and its path is still
    the extracted model."""
    space = MogaSpace(width_mult=0.35, input_size=32, num_classes=4, stem_stride=2, dropout=0.0)
    supernet = space.build_supernet(generator=torch.Generator().manual_seed(0), options={"kernel_weights": "per_kernel"})
    shared = space.build_supernet(generator=torch.Generator().manual_seed(0))
    assert not any("dw_kernels" in key for key in shared.state_dict())  # the default keeps its checkpoints' keys
    block = supernet.blocks[0]
    assert block.dw_kernels.sizes == (3, 5) and block.dw[0].weight.shape[-1] == 7
    k3 = choice_index(6, 3, True)
    path = (k3,) * 14
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    supernet.train()(x, path).sum().backward()
    assert block.dw_kernels.weight(3).grad.abs().sum() > 0
    assert block.dw_kernels.weight(5).grad is None
    assert block.dw[0].weight.grad is None  # the 7x7 weights: untouched by a 3x3 path
    supernet.eval()
    model = space.extract(supernet, path)
    torch.testing.assert_close(model.blocks[0].dw[0].weight, block.dw_kernels.weight(3).detach())
    with torch.no_grad():
        torch.testing.assert_close(model(x), supernet(x, path), rtol=0, atol=1e-6)
    # a 7x7 choice still runs on the block's own dw conv
    k7 = choice_index(6, 7, True)
    torch.testing.assert_close(space.extract(supernet, (k7,) * 14).blocks[0].dw[0].weight, block.dw[0].weight.detach())
