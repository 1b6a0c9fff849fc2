"""The cluster recipes in cluster/recipes/: valid for the tools that read them, and holding what hwnas needs.

The launcher YAMLs are checked as `ray up` checks them (Ray's shipped ray-schema.json, then its own
prepare + validate); the KubeRay manifests are parsed and checked for a device resource, one shared
ReadWriteMany volume at the same path in every Ray pod, the MLflow tracking URI, the job API, and a RayJob
whose config is a valid hwnas config.
"""
from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

RECIPES = Path(__file__).resolve().parents[2] / "cluster" / "recipes"
LAUNCHER = sorted(RECIPES.glob("*.yaml"))


def _start_commands(config: dict[str, Any]) -> str:
    return " ".join(config.get("head_start_ray_commands", []) + config.get("worker_start_ray_commands", []))


def test_the_recipes_exist() -> None:
    assert [p.name for p in LAUNCHER] == ["aws-gpu.yaml", "onprem.yaml"]
    assert {p.name for p in (RECIPES / "kuberay").glob("*.yaml")} == {"raycluster.yaml", "rayjob.yaml"}


@pytest.mark.parametrize("path", LAUNCHER, ids=lambda p: p.name)
def test_launcher_yaml_is_valid_for_ray_up(path: Path) -> None:
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(path.read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # as written, before Ray fills in defaults
    validate_config(prepare_config(copy.deepcopy(config)))


@pytest.mark.parametrize("path", LAUNCHER, ids=lambda p: p.name)
def test_launcher_yaml_has_what_hwnas_needs(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    commands = _start_commands(config)
    assert "--dashboard-host=0.0.0.0" in commands  # the job API, reachable from the submitting machine
    setup = " ".join(config.get("setup_commands", []))
    assert "/shared" in setup and "mount" in setup  # the storage, mounted at one path on every node
    assert "mlflow server" in " ".join(config.get("head_setup_commands", []))
    assert "pip install" in setup and "hwnas" in setup
    # A device node: a node type advertising device:NAME, or workers reading their resources from a file.
    types = config.get("available_node_types", {})
    advertised = [r for t in types.values() for r in t.get("resources", {}) if r.startswith("device:")]
    assert advertised or "/etc/hwnas/resources.json" in commands
    if config["provider"]["type"] != "local":
        assert advertised == ["device:cuda-torch"]


# ------------------------------------------------------------------------------------------ KubeRay
@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    docs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((RECIPES / "kuberay").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["metadata"]["name"], path
            docs.setdefault(doc["kind"], []).append(doc)
    return docs


def _groups(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    return [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]


def _resources(group: dict[str, Any]) -> dict[str, float]:
    """A group's custom resources: KubeRay's rayStartParams.resources is a quoted JSON string."""
    raw = group["rayStartParams"].get("resources")
    return json.loads(json.loads(raw)) if raw else {}


def test_raycluster_has_device_gpu_and_cpu_groups(manifests) -> None:
    (cluster,) = manifests["RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert any(p["containerPort"] == 8265 for p in head["template"]["spec"]["containers"][0]["ports"])
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu", "device"}
    assert _resources(groups["device"]) == {"device:cpu": 1}
    assert _resources(groups["gpu"]) == {"device:cuda-torch": 1}
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == 1 and groups["gpu"]["rayStartParams"]["num-gpus"] == "1"
    assert groups["device"]["maxReplicas"] == 1  # one latency target


def test_every_ray_pod_mounts_one_shared_volume_at_one_path(manifests) -> None:
    (cluster,) = manifests["RayCluster"]
    claims = {c["metadata"]["name"]: c for c in manifests["PersistentVolumeClaim"]}
    seen = set()
    for group in _groups(cluster):
        spec = group["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            for mount in container["volumeMounts"]:
                claim = volumes[mount["name"]].get("persistentVolumeClaim")
                if claim:
                    seen.add((claim["claimName"], mount["mountPath"]))
    assert len(seen) == 1, seen  # the same claim at the same path everywhere
    (claim_name, path), = seen
    assert claims[claim_name]["spec"]["accessModes"] == ["ReadWriteMany"]
    (job,) = manifests["RayJob"]
    storage = shlex.split(job["spec"]["entrypoint"])
    assert storage[storage.index("--storage") + 1].startswith(path + "/")


def test_tracking_uri_points_at_the_mlflow_service(manifests) -> None:
    (cluster,) = manifests["RayCluster"]
    services = {s["metadata"]["name"]: s for s in manifests["Service"]}
    uris = {env["value"] for group in _groups(cluster) for c in group["template"]["spec"]["containers"]
            for env in c.get("env", []) if env["name"] == "MLFLOW_TRACKING_URI"}
    assert len(uris) == 1
    (uri,) = uris
    host, port = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", uri).groups()
    assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
    assert all(any(env["name"] == "MLFLOW_TRACKING_URI" for env in c.get("env", []))
               for group in _groups(cluster) for c in group["template"]["spec"]["containers"])
    (job,) = manifests["RayJob"]
    assert f"--tracking-uri {uri}" in job["spec"]["entrypoint"]


def test_rayjob_runs_a_valid_hwnas_config_on_the_cluster(manifests) -> None:
    from orchestrator.config import config_from_dict

    (cluster,) = manifests["RayCluster"]
    (job,) = manifests["RayJob"]
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["hwnas", "search"] and argv[argv.index("--address") + 1] == "auto"
    config_path = Path(argv[2])
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]
    mount = next(m for m in head["containers"][0]["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    config_map = next(v["configMap"]["name"] for v in head["volumes"] if v["name"] == mount["name"])
    data = next(c for c in manifests["ConfigMap"] if c["metadata"]["name"] == config_map)["data"]
    cfg = config_from_dict(yaml.safe_load(data[config_path.name]))
    assert cfg.cost.device == "cpu"  # measured on the device group
    assert job["spec"]["metadata"]["hwnas_experiment"] == f"{argv[argv.index('--storage') + 1]}/{cfg.name}"
