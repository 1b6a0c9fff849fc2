"""The search-space contract suite, parametrised over every registered space (like ``optuna.testing``).

A test module that imports it runs it for every space in :data:`spaces.SPACES`, at each space's
``SMALL_SETTINGS``::

    from spaces.testing import *  # noqa: F401,F403

A newly registered space is tested without anyone writing a test for it: settings, encodings, string
forms, candidate ids, building without the global RNG, the weight-sharing supernet (mandatory: a path
equals its extracted model), analytic counts against the hook counter, detection endpoints, the
lookup-table parts, and (marked ``integration``) ONNX export checked by ONNX Runtime. Needs pytest.
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

from core.errors import ConfigError, InvalidEncodingError

from .base import SPACES, Encoding, SearchSpace
from .counting import count_madds, count_params
from .export import OPSET, export_onnx, onnx_parity, output_names

__all__ = [
    "contract_detector",
    "contract_space",
    "single_torch_thread",
    "test_analytic_counts_match_hook_counts",
    "test_bad_encodings_are_rejected",
    "test_bad_strings_are_rejected",
    "test_block_args_are_frozen_per_layer_data",
    "test_build_does_not_touch_the_global_rng",
    "test_build_forward_backward",
    "test_candidate_id_is_stable_and_distinguishes",
    "test_largest_and_smallest_bound_the_space",
    "test_supernet_options_are_checked",
    "test_decode_encode_round_trip",
    "test_detector_counts_match_hook_counts",
    "test_detector_onnx_matches_onnxruntime",
    "test_detector_outputs_follow_the_anchors",
    "test_detector_supernet_path_equals_extracted_model",
    "test_dims_are_constant_and_well_formed",
    "test_endpoints_match_the_built_network",
    "test_extract_refuses_a_foreign_supernet",
    "test_layer_parts_chain_the_network",
    "test_onnx_export_matches_onnxruntime",
    "test_onnx_graph_interface",
    "test_op_census_counts_what_runs",
    "test_samples_within_bounds_and_deterministic",
    "test_settings_are_data",
    "test_string_form_round_trip",
    "test_supernet_path_equals_extracted_model",
]


def make_space(name: str) -> SearchSpace:
    """The registered space ``name`` at its ``SMALL_SETTINGS``."""
    cls = SPACES.get(name)
    return cls(**cls.small_settings())


def samples(space: SearchSpace, n: int, seed: int = 0) -> list[Encoding]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def input_batch(space: SearchSpace, batch: int, seed: int) -> torch.Tensor:
    _, channels, height, width = space.input_shape
    return torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


def _outputs(result: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return result if isinstance(result, tuple) else (result,)


@pytest.fixture(params=SPACES.names())
def contract_space(request: pytest.FixtureRequest) -> SearchSpace:
    return make_space(request.param)


_DETECTORS = [n for n in SPACES.names() if SPACES.get(n).small_detection_settings() is not None]


@pytest.fixture(params=_DETECTORS)
def contract_detector(request: pytest.FixtureRequest) -> SearchSpace:
    """Every space with a detection head, as a small SSDLite detector."""
    cls = SPACES.get(request.param)
    return cls(**cls.small_detection_settings())


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a busy 2-core runner, spinning OpenMP threads make tiny kernels crawl."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ------------------------------------------------------------------------------------------ settings
def test_settings_are_data(contract_space: SearchSpace) -> None:
    space, cls = contract_space, type(contract_space)
    assert SPACES.get(space.name) is cls
    assert {"input_size", "num_classes"} <= {s.name for s in cls.SETTINGS}  # data and tasks set them
    assert space.settings == cls(**space.settings).settings  # settings are complete
    assert list(inspect.signature(cls).parameters) == [s.name for s in cls.SETTINGS]
    defaults = cls()
    assert set(defaults.settings) == {s.name for s in cls.SETTINGS}
    with pytest.raises(ConfigError, match=r"unknown setting for space .*; its settings are: .*HINT"):
        cls(no_such_setting=1)
    with pytest.raises(ConfigError, match=r"config field 'space.settings.input_size': must be an integer"):
        cls.check_settings({"input_size": "big"}, where=lambda n: f"config field 'space.settings.{n}'")


# ------------------------------------------------------------------------------------------ encodings
def test_dims_are_constant_and_well_formed(contract_space: SearchSpace) -> None:
    dims = contract_space.dims
    assert dims and dims == contract_space.dims
    assert len({d.name for d in dims}) == len(dims)
    for dim in dims:
        assert dim.size >= 2 and len(set(dim.choices)) == dim.size
        # Names and labels become MLflow params (``layer_03 = t6k5SE``): keys MLflow accepts, readable values.
        assert re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", dim.name), dim.name
        assert all(re.fullmatch(r"[A-Za-z0-9_.\-+x]{1,64}", c) for c in dim.choices), dim.choices


def test_decode_encode_round_trip(contract_space: SearchSpace) -> None:
    space = contract_space
    for encoding in samples(space, 25) + [space.default_encoding()]:
        arch = space.decode(encoding)
        assert space.encode(arch) == encoding
        assert space.decode(space.encode(arch)) == arch
        hash(arch)  # block arguments are frozen, hashable data


def test_block_args_are_frozen_per_layer_data(contract_space: SearchSpace) -> None:
    for encoding in samples(contract_space, 3):
        blocks = contract_space.block_args(encoding)
        assert blocks == tuple(contract_space.decode(encoding).blocks) and len(blocks) > 0
        for args in blocks:
            hash(args)
            with pytest.raises(AttributeError):  # frozen dataclass
                args.__setattr__("in_ch", 1)


def test_string_form_round_trip(contract_space: SearchSpace) -> None:
    for encoding in samples(contract_space, 25):
        text = contract_space.to_string(encoding)
        assert contract_space.parse(text) == encoding
        assert contract_space.parse(list(encoding)) == encoding


def test_samples_within_bounds_and_deterministic(contract_space: SearchSpace) -> None:
    low, high = contract_space.bounds
    drawn = samples(contract_space, 50, seed=7)
    for encoding in drawn:
        values = np.asarray(encoding)
        assert values.dtype.kind == "i" and (values >= low).all() and (values <= high).all()
        assert all(type(v) is int for v in encoding)
    assert drawn == samples(contract_space, 50, seed=7)
    assert drawn != samples(contract_space, 50, seed=8)


def test_largest_and_smallest_bound_the_space(contract_space: SearchSpace) -> None:
    """The sandwich rule's paths: valid, and no sampled architecture costs more (less) in MAdds."""
    space = contract_space
    largest, smallest = space.largest_encoding(), space.smallest_encoding()
    assert space.validate(largest) == largest and space.validate(smallest) == smallest
    top, bottom = space.count(largest)["madds"], space.count(smallest)["madds"]
    assert bottom < top
    for encoding in samples(space, 20, seed=3):
        assert bottom <= space.count(encoding)["madds"] <= top


def test_candidate_id_is_stable_and_distinguishes(contract_space: SearchSpace) -> None:
    space = contract_space
    first, second = samples(space, 2, seed=3)
    assert first != second
    cid = space.candidate_id(first)
    assert re.fullmatch(r"[0-9a-f]{16}", cid)
    assert cid == make_space(space.name).candidate_id(list(first))
    assert cid != space.candidate_id(second)
    assert cid != type(space)().candidate_id(first)  # other settings, other candidate


BAD_ENCODINGS = [
    ("too_short", r"encoding has \d+ choices but the space has \d+"),
    ("too_long", r"encoding has \d+ choices but the space has \d+"),
    ("out_of_range", r"outside 0\.\.\d+\. HINT: allowed choices for "),
    ("negative", r"outside 0\.\.\d+"),
    ("fraction", r"must be integers"),
    ("word", r"integer choice indices"),
    ("none", r"integer choice indices"),
]


@pytest.mark.parametrize("bad, pattern", BAD_ENCODINGS)
def test_bad_encodings_are_rejected(contract_space: SearchSpace, bad: str, pattern: str) -> None:
    good = list(contract_space.default_encoding())
    first_dim = contract_space.dims[0]
    candidates = {
        "too_short": good[:-1], "too_long": good + [0], "out_of_range": [first_dim.size] + good[1:],
        "negative": [-1] + good[1:], "fraction": [0.5] + good[1:], "word": ["x"] + good[1:], "none": None,
    }  # fmt: skip
    with pytest.raises(InvalidEncodingError, match=pattern) as info:
        contract_space.decode(candidates[bad])
    if bad == "out_of_range":
        assert first_dim.name in str(info.value)
        assert all(label in str(info.value) for label in first_dim.choices)


@pytest.mark.parametrize("text", ["", "1-2-x", "1--2", "one-two", "1.5-2"])
def test_bad_strings_are_rejected(contract_space: SearchSpace, text: str) -> None:
    with pytest.raises(InvalidEncodingError):
        contract_space.parse(text)


# ------------------------------------------------------------------------------------------ models
def test_build_forward_backward(contract_space: SearchSpace) -> None:
    space = contract_space
    for i, encoding in enumerate(samples(space, 2, seed=11)):
        model = space.build(encoding)
        assert isinstance(model, torch.nn.Module)
        outputs = _outputs(model.train()(input_batch(space, 2, seed=i)))
        assert len(outputs) == len(output_names(model))
        assert outputs[-1].shape[0] == 2 and outputs[-1].shape[-1] == space.settings["num_classes"]
        assert all(torch.isfinite(t).all() for t in outputs)
        sum(t.float().mean() for t in outputs).backward()
        missing = [name for name, p in model.named_parameters() if p.grad is None]
        assert not missing, f"parameters that never receive a gradient: {missing[:5]}"


def test_build_does_not_touch_the_global_rng(contract_space: SearchSpace) -> None:
    encoding = samples(contract_space, 1)[0]
    before = torch.random.get_rng_state()
    first = contract_space.build(encoding)
    assert torch.equal(before, torch.random.get_rng_state())
    second = contract_space.build(encoding)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name


def _option_sets(space: SearchSpace) -> list[dict[str, str]]:
    """The default supernet and one per non-default option value the space declares."""
    return [{}] + [{key: value} for key, values in space.SUPERNET_OPTIONS.items() for value in values]


def test_supernet_options_are_checked(contract_space: SearchSpace) -> None:
    from spaces.base import SUPERNET_OPTION_DEFAULTS

    space = contract_space
    assert space.supernet_options(SUPERNET_OPTION_DEFAULTS) == {}  # defaults: always accepted, never recorded
    for options in _option_sets(space)[1:]:
        assert space.build_supernet(options=options).supernet_options == options
    for key in SUPERNET_OPTION_DEFAULTS:
        if not space.SUPERNET_OPTIONS.get(key):
            with pytest.raises(ConfigError, match=f"cannot build its supernet with {key}"):
                space.build_supernet(options={key: "per_kernel"})
    with pytest.raises(ConfigError, match="unknown supernet option"):
        space.supernet_options({"bogus": "x"})


def test_supernet_path_equals_extracted_model(contract_space: SearchSpace) -> None:
    for options in _option_sets(contract_space):
        _check_supernet_paths(contract_space, options)


def _check_supernet_paths(space: SearchSpace, options: dict[str, str]) -> None:
    supernet = space.build_supernet(options=options)
    assert supernet.space_identity == space.identity
    encodings = samples(space, 3, seed=5)
    with torch.no_grad():  # train-mode passes move the BN running stats away from their 0 / 1 init
        for i, encoding in enumerate(encodings):
            supernet.train()(input_batch(space, 4, seed=100 + i), encoding)
    supernet.eval()
    x = input_batch(space, 2, seed=1)
    for encoding in encodings:
        model = space.extract(supernet, encoding)
        assert type(model) is type(space.build(encoding)) and not model.training
        with torch.no_grad():
            expected, actual = _outputs(supernet(x, encoding)), _outputs(model(x))
        for want, got in zip(expected, actual):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        assert count_params(model) == count_params(space.build(encoding))
        assert all(p.data_ptr() != q.data_ptr() for p in model.parameters() for q in supernet.parameters())


def test_extract_refuses_a_foreign_supernet(contract_space: SearchSpace) -> None:
    space = contract_space
    other = type(space)(**{**space.settings, "num_classes": space.settings["num_classes"] + 1})
    with pytest.raises(ConfigError, match="same settings"):
        space.extract(other.build_supernet(), space.default_encoding())


def _check_counts(space: SearchSpace, n: int, seed: int) -> None:
    for encoding in samples(space, n, seed=seed):
        model = space.build(encoding)
        expected = {"params": count_params(model), "madds": count_madds(model, space.input_shape)}
        assert space.count(encoding) == expected
        assert SearchSpace.count(space, encoding) == expected  # the generic meta-device count agrees


def test_analytic_counts_match_hook_counts(contract_space: SearchSpace) -> None:
    _check_counts(contract_space, 4, seed=13)


def test_op_census_counts_what_runs(contract_space: SearchSpace) -> None:
    """The kernel census (what kernel-level cost models read) agrees with the counting convention, with the
    built model, and with the exported ONNX graph's convolutions."""
    import onnx

    from .op_census import op_census

    space = contract_space
    for encoding in samples(space, 2, seed=17):
        census = space.op_census(encoding)
        assert all(v >= 0 for v in census.values()) and census == space.op_census(list(encoding))
        madds = sum(v for k, v in census.items() if k.endswith(".madds"))
        assert madds == space.count(encoding)["madds"]
        assert census == op_census(space.build(encoding), space.input_shape)  # uninitialised weights change nothing
    graph = onnx.load_from_string(export_onnx(space.build(encoding).eval(), space.input_shape)).graph
    kinds = {k.rsplit(".", 1)[0]: v for k, v in census.items() if k.endswith(".count")}
    convs = sum(v for kind, v in kinds.items() if "conv" in kind or kind == "pw" or kind.startswith("dw"))
    assert convs == sum(node.op_type == "Conv" for node in graph.node)


def test_endpoints_match_the_built_network(contract_space: SearchSpace) -> None:
    space = contract_space
    encoding = samples(space, 1, seed=17)[0]
    endpoints = space.endpoints(encoding)
    if not endpoints:
        pytest.skip(f"{space.name} has no detection endpoints")
    assert [e.name for e in endpoints] == ["C4", "C5"] and endpoints[1].stride == 2 * endpoints[0].stride
    model = space.build(encoding).eval()
    with torch.no_grad():
        maps = model.block_outputs(input_batch(space, 1, seed=0), [e.block for e in endpoints])
    size = space.input_shape[-1]
    for endpoint, tensor in zip(endpoints, maps):
        assert tensor.shape[1] == endpoint.channels
        assert tensor.shape[-1] == -(-size // endpoint.stride), endpoint


def test_layer_parts_chain_the_network(contract_space: SearchSpace) -> None:
    space = contract_space
    parts = space.layer_parts()
    if parts is None:
        pytest.skip(f"{space.name}'s layers change shape with their choices: no lookup-table parts")
    assert len(parts.choices) == len(parts.layer_inputs) == len(space.dims)
    with torch.no_grad():
        assert tuple(parts.prefix.eval()(torch.zeros(parts.input_shape)).shape) == parts.layer_inputs[0]
        for i, (choices, shape) in enumerate(zip(parts.choices, parts.layer_inputs)):
            following = parts.layer_inputs[i + 1] if i + 1 < len(parts.layer_inputs) else parts.suffix_input
            for args in (choices[0], choices[-1]):
                assert tuple(parts.block(args).eval()(torch.zeros(shape)).shape) == following
        logits = parts.suffix.eval()(torch.zeros(parts.suffix_input))
    assert logits.shape == (1, space.settings["num_classes"])


# ------------------------------------------------------------------------------------------ ONNX
def _trained_bn(model: torch.nn.Module, space: SearchSpace) -> torch.nn.Module:
    """Move BN running stats off their 0 / 1 init so that constant folding of BN is really exercised."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(2):
            model.train()(torch.randn(4, *space.input_shape[1:], generator=generator))
    return model


@pytest.mark.integration
def test_onnx_export_matches_onnxruntime(contract_space: SearchSpace) -> None:
    space = contract_space
    for seed, encoding in enumerate(samples(space, 2, seed=21)):
        model = _trained_bn(space.build(encoding), space)
        data = export_onnx(model, space.input_shape)
        assert model.training  # the caller's mode is restored
        assert onnx_parity(model, data, space.input_shape, seed=seed) < 1e-4


@pytest.mark.integration
def test_onnx_graph_interface(contract_space: SearchSpace, tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    import onnx

    space = contract_space
    model = space.build(space.default_encoding())
    path = tmp_path / "model.onnx"
    data = export_onnx(model, space.input_shape, path=path)
    assert path.read_bytes() == data
    graph = onnx.load_from_string(data)
    assert [i.name for i in graph.graph.input] == ["input"]
    assert [o.name for o in graph.graph.output] == list(output_names(model))
    assert {op.version for op in graph.opset_import if op.domain in ("", "ai.onnx")} == {OPSET}
    assert [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim] == list(space.input_shape)
    assert not any(node.op_type == "BatchNormalization" for node in graph.graph.node)  # folded into convs
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


# ------------------------------------------------------------------------------------------ detection
def test_detector_outputs_follow_the_anchors(contract_detector: SearchSpace) -> None:
    space = contract_detector
    anchors = space.detection_anchors()
    assert anchors.dtype == np.float32 and anchors.shape[1] == 4
    assert (anchors[:, 2:] > 0).all() and (anchors[:, :2] > 0).all() and (anchors[:, :2] < 1).all()
    classes = space.settings["num_classes"]
    for encoding in samples(space, 3, seed=31):
        boxes, logits = space.build(encoding).eval()(input_batch(space, 2, seed=0))
        assert boxes.shape == (2, len(anchors), 4) and logits.shape == (2, len(anchors), classes)
    classifier = type(space)(**{**space.settings, "task": "classification"})
    assert "task" in space.identity["settings"] and space.identity != classifier.identity


def test_detector_supernet_path_equals_extracted_model(contract_detector: SearchSpace) -> None:
    space = contract_detector
    supernet = space.build_supernet(generator=torch.Generator().manual_seed(0))
    x = input_batch(space, 4, seed=1)
    with torch.no_grad():  # move BN statistics along several paths, so slices differ from the init
        for encoding in samples(space, 3, seed=41):
            supernet.train()(x, encoding)
    supernet.eval()
    for encoding in samples(space, 3, seed=43):
        model = space.extract(supernet, encoding).eval()
        with torch.no_grad():
            for want, got in zip(supernet(x, encoding), model(x)):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_detector_counts_match_hook_counts(contract_detector: SearchSpace) -> None:
    _check_counts(contract_detector, 3, seed=47)
    assert contract_detector.layer_parts() is None  # the head reads two maps: no per-layer table


@pytest.mark.integration
def test_detector_onnx_matches_onnxruntime(contract_detector: SearchSpace) -> None:
    space = contract_detector
    encoding = samples(space, 1, seed=53)[0]
    model = _trained_bn(space.build(encoding), space)
    data = export_onnx(model, space.input_shape)
    assert output_names(model) == ("boxes", "logits")
    assert onnx_parity(model, data, space.input_shape, seed=0) < 1e-4
