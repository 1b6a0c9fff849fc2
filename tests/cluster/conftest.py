"""Fixtures of the cluster tests: tiny ONNX models and Ray sessions that always shut down.

Ray 2.60 notes, found while writing these fixtures:

* A local ``ray.init()`` enables token authentication by default: it writes ``~/.ray/auth_token``
  if missing and sets ``RAY_AUTH_MODE=token`` in this process's environment (it stays set after
  ``ray.shutdown()``).
* ``ray.cluster_utils.Cluster`` does not touch authentication itself. Its nodes inherit the
  environment, so after a local ``ray.init()`` they start with token auth and the token file that
  now exists, and a driver joining by address authenticates with the same file; before any local
  start they run without auth and so does the driver. Both orders work; nothing special is needed.
* ``Cluster(initialize_head=True, head_node_args={"num_cpus": 1})`` plus ``add_node(...,
  resources={"device:edge": 1})`` starts in ~8 s on 2 cores; joining with ``ray.init(address=...)``
  then works as for a real cluster.
"""
from __future__ import annotations

import io
import time
from typing import Any, Callable, Iterator, NamedTuple

import pytest
import ray
import torch

from cluster import LATENCY_NAMESPACE, MeasureOptions, connect


class OnnxModel(NamedTuple):
    data: bytes
    shape: tuple[int, ...]


def _export(model: torch.nn.Module, shape: tuple[int, ...]) -> OnnxModel:
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model.eval(), torch.zeros(shape), buf, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
    return OnnxModel(buf.getvalue(), shape)


@pytest.fixture(scope="session")
def tiny_onnx() -> OnnxModel:
    """A conv-pool-linear model that runs in tens of microseconds."""
    with torch.random.fork_rng():  # seeded weights without touching the global RNG's state
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))
    return _export(model, (1, 3, 16, 16))


@pytest.fixture(scope="session")
def slow_onnx() -> OnnxModel:
    """Seven 64-channel 3x3 convolutions at 64x64: about 15 ms per run on one thread."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        layers: list[torch.nn.Module] = [torch.nn.Conv2d(3, 64, 3, padding=1)]
        for _ in range(6):
            layers += [torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3, padding=1)]
        model = torch.nn.Sequential(*layers)
    return _export(model, (1, 3, 64, 64))


@pytest.fixture
def fast_options() -> MeasureOptions:
    """Cheap measurements: the tests check plumbing, not precision."""
    return MeasureOptions(warmup=2, min_runs=5, max_runs=20, min_time_s=0.0, max_rounds=1)


def _shutdown_leftover() -> None:
    if ray.is_initialized():  # a test elsewhere leaked a session; start from a clean slate
        ray.shutdown()


@pytest.fixture(scope="module")
def _local_ray_session() -> Iterator[None]:
    # One embedded Ray per test module: starting one costs 5-10 s on 2 cores.
    _shutdown_leftover()
    connect(None, num_cpus=1)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def local_ray(_local_ray_session: None) -> Iterator[None]:
    """The embedded Ray hwnas starts with no address: one node advertising ``device:cpu``.

    Shared by the tests of a module, so each test ends by killing the latency actors it created;
    the next test gets fresh ones (with its own cache path) instead of finding these by name.
    """
    yield
    _kill_latency_actors()


def _kill_latency_actors(*, timeout_s: float = 30.0) -> None:
    named = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == LATENCY_NAMESPACE]
    for entry in named:
        try:
            actor = ray.get_actor(entry["name"], namespace=LATENCY_NAMESPACE)
        except ValueError:
            continue  # dying already (listed a moment ago, its last handle since dropped)
        ray.kill(actor, no_restart=True)
    for entry in named:
        _wait_until_actor_name_is_free(entry["name"], timeout_s=timeout_s)


@pytest.fixture
def wait_until_actor_name_is_free() -> Callable[..., None]:
    """The helper below, for tests that kill an actor and create its successor."""
    return _wait_until_actor_name_is_free


def _wait_until_actor_name_is_free(name: str, *, timeout_s: float = 30.0) -> None:
    """ray.kill returns before the GCS forgets the actor's name; a new actor must wait for that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(name, namespace=LATENCY_NAMESPACE)
        except ValueError:
            return
        time.sleep(0.05)
    pytest.fail(f"actor {name!r} still registered {timeout_s} s after ray.kill")


class TwoNodes(NamedTuple):
    cluster: Any  # ray.cluster_utils.Cluster, for tests that add or remove nodes
    head_node_id: str
    edge_node_id: str


@pytest.fixture(scope="module")
def _two_node_session() -> Iterator[TwoNodes]:
    from ray.cluster_utils import Cluster

    _shutdown_leftover()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        edge = cluster.add_node(num_cpus=1, resources={"device:edge": 1})
        connect(cluster.address)
        cluster.wait_for_nodes()
        yield TwoNodes(cluster=cluster, head_node_id=cluster.head_node.node_id, edge_node_id=edge.node_id)
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def two_node_cluster(_two_node_session: TwoNodes) -> Iterator[TwoNodes]:
    """A head node without devices and a second node carrying ``device:edge``, joined by address.

    Shared by the tests of a module; each test's latency actors are killed after it.
    """
    yield _two_node_session
    _kill_latency_actors()
