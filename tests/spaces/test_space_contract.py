"""The search-space contract, run for every registered space at its ``small_settings()``.

A newly registered space is tested here without anyone writing a test for it. Optional members
(``build_supernet`` / ``extract``, ``count``) are checked when a space has them. The ONNX part of the
contract lives in ``test_space_export_integration.py``.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import spaces
from spaces import SPACES, InvalidEncodingError, SearchSpace, count_madds, count_params

SPACE_NAMES = SPACES.names()


def make_space(name: str) -> SearchSpace:
    cls = SPACES.get(name)
    return cls(**getattr(cls, "small_settings", dict)())


def samples(space: SearchSpace, n: int, seed: int = 0) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def input_batch(space: SearchSpace, batch: int, seed: int) -> torch.Tensor:
    _, channels, height, width = space.input_shape
    return torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=SPACE_NAMES)
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return make_space(request.param)


def test_registry_is_not_empty() -> None:
    assert "moga" in SPACE_NAMES


def test_space_has_name_and_small_settings(space: SearchSpace) -> None:
    assert SPACES.get(space.name) is type(space)
    assert hasattr(type(space), "small_settings"), "give the space a small_settings() classmethod for the tests"
    assert space.settings == type(space)(**space.settings).settings  # settings are complete


def test_dims_are_constant_and_well_formed(space: SearchSpace) -> None:
    dims = space.dims
    assert dims and dims == space.dims
    assert len({d.name for d in dims}) == len(dims)
    for dim in dims:
        assert dim.size >= 2 and len(set(dim.choices)) == dim.size


def test_decode_encode_round_trip(space: SearchSpace) -> None:
    for encoding in samples(space, 25) + [space.default_encoding()]:
        arch = space.decode(encoding)
        assert space.encode(arch) == encoding
        assert space.decode(space.encode(arch)) == arch
        hash(arch)  # block arguments are frozen, hashable data


def test_string_form_round_trip(space: SearchSpace) -> None:
    for encoding in samples(space, 25):
        text = space.to_string(encoding)
        assert space.parse(text) == encoding
        assert space.parse(list(encoding)) == encoding


def test_samples_within_bounds_and_deterministic(space: SearchSpace) -> None:
    low, high = space.bounds
    drawn = samples(space, 50, seed=7)
    for encoding in drawn:
        values = np.asarray(encoding)
        assert values.dtype.kind == "i" and (values >= low).all() and (values <= high).all()
        assert all(type(v) is int for v in encoding)
    assert drawn == samples(space, 50, seed=7)
    assert drawn != samples(space, 50, seed=8)


def test_candidate_id_is_stable_and_distinguishes(space: SearchSpace) -> None:
    first, second = samples(space, 2, seed=3)
    assert first != second
    cid = space.candidate_id(first)
    assert re.fullmatch(r"[0-9a-f]{16}", cid)
    assert cid == make_space(space.name).candidate_id(list(first))
    assert cid != space.candidate_id(second)
    assert cid != type(space)().candidate_id(first)  # other settings, other candidate


def test_build_forward_backward(space: SearchSpace) -> None:
    for i, encoding in enumerate(samples(space, 2, seed=11)):
        model = space.build(encoding)
        assert isinstance(model, torch.nn.Module)
        logits = model.train()(input_batch(space, 2, seed=i))
        assert logits.shape == (2, space.settings["num_classes"]) and torch.isfinite(logits).all()
        logits.logsumexp(1).mean().backward()
        missing = [name for name, p in model.named_parameters() if p.grad is None]
        assert not missing, f"parameters that never receive a gradient: {missing[:5]}"


def test_build_does_not_touch_the_global_rng(space: SearchSpace) -> None:
    encoding = samples(space, 1)[0]
    before = torch.random.get_rng_state()
    first = space.build(encoding)
    assert torch.equal(before, torch.random.get_rng_state())
    second = space.build(encoding)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name


def test_supernet_path_equals_extracted_model(space: SearchSpace) -> None:
    if not hasattr(space, "build_supernet"):
        pytest.skip(f"{space.name} has no supernet")
    supernet = space.build_supernet()
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
            expected, actual = supernet(x, encoding), model(x)
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)
        assert count_params(model) == count_params(space.build(encoding))


def test_analytic_counts_match_hook_counts(space: SearchSpace) -> None:
    if not hasattr(space, "count"):
        pytest.skip(f"{space.name} has no analytic counter")
    for encoding in samples(space, 4, seed=13):
        model = space.build(encoding)
        expected = {"params": count_params(model), "madds": count_madds(model, space.input_shape)}
        assert space.count(encoding) == expected


@pytest.mark.parametrize(
    "bad, pattern",
    [
        ("too_short", r"encoding has \d+ choices but the space has \d+"),
        ("too_long", r"encoding has \d+ choices but the space has \d+"),
        ("out_of_range", r"outside 0\.\.\d+\. HINT: allowed choices for "),
        ("negative", r"outside 0\.\.\d+"),
        ("fraction", r"must be integers"),
        ("word", r"integer choice indices"),
        ("none", r"integer choice indices"),
    ],
)
def test_bad_encodings_are_rejected(space: SearchSpace, bad: str, pattern: str) -> None:
    good = list(space.default_encoding())
    first_dim = space.dims[0]
    candidates = {
        "too_short": good[:-1],
        "too_long": good + [0],
        "out_of_range": [first_dim.size] + good[1:],
        "negative": [-1] + good[1:],
        "fraction": [0.5] + good[1:],
        "word": ["x"] + good[1:],
        "none": None,
    }
    with pytest.raises(InvalidEncodingError, match=pattern) as info:
        space.decode(candidates[bad])
    if bad == "out_of_range":
        assert first_dim.name in str(info.value)
        assert all(label in str(info.value) for label in first_dim.choices)


@pytest.mark.parametrize("text", ["", "1-2-x", "1--2", "one-two", "1.5-2"])
def test_bad_strings_are_rejected(space: SearchSpace, text: str) -> None:
    with pytest.raises(InvalidEncodingError):
        space.parse(text)


def test_public_exports() -> None:
    for name in ["MogaSpace", "count_params", "count_madds", "export_onnx", "onnx_parity", "PRESETS", "get_preset"]:
        assert name in spaces.__all__ and hasattr(spaces, name)
