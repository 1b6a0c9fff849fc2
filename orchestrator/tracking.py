"""MLflow tracking fed idempotently from the journal.

One MLflow experiment per hwnas experiment name; one parent run per experiment directory (found again
by its ``hwnas_uid`` tag); one nested run per candidate (found again by ``candidate_id``). Logging a
candidate twice, or after a crash between creating and finishing its run, still leaves exactly one
finished run. An unreachable tracking server delays logging; nothing is lost, because the journal
holds every record and the next ``hwnas resume`` (or the end of this run) syncs what is missing.

Every MLflow call runs on one background thread, in submission order: logging a candidate never
blocks Tune's event loop (an MLflow round trip costs more than a Tune trial), and the calls that need
their outcome (start, sync, finish) wait for the queue to drain first.
"""
from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

from .metrics import readable_metrics
from .sqlite_store import create_sqlite_store, relax_commit_sync

__all__ = ["Tracker", "default_tracking_uri", "ui_command"]

UID_TAG, ROLE_TAG = "hwnas_uid", "hwnas_role"
#: MLflow's own tags: the experiment's kind (what its UI opens on) and the markdown description of an
#: experiment or run.
EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT = "mlflow.experimentKind", "custom_model_development"
NOTE_TAG = "mlflow.note.content"
#: The supernet's per-step curves, as its trainer reports them.
SUPERNET_CURVES = ("loss", "train_accuracy", "lr")


def default_tracking_uri(cwd: str | os.PathLike[str] | None = None) -> str:
    # Not MLFLOW_TRACKING_URI: mlflow.set_tracking_uri() sets it in its own process, so any process that
    # logged once would hand its store on to every hwnas it starts. A store is named with --tracking-uri.
    return f"sqlite:///{Path(cwd or os.getcwd()).resolve() / 'mlflow.db'}"


def ui_command(tracking_uri: str, experiment_id: str | None = None) -> str:
    """How to look at an experiment: the server to start (for a local store) and the page to open.

    MLflow 3's UI opens every experiment in its GenAI view (traces) unless the browser chose "Model
    training" in the sidebar; ``workflowType=machine_learning`` in the link opens the runs table instead.
    """
    page = f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning" if experiment_id else ""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri.rstrip('/')}{page} in a browser"
    serve = f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000"
    return f"{serve}, then open http://127.0.0.1:5000{page}" if page else serve


def _quiet_mlflow() -> None:
    # A dead server must cost seconds, not MLflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    # Logging a model through a fluent run prints "View run ... at: URL" twice per model on a tracking server.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    warnings.filterwarnings("ignore", module="mlflow")
    import logging

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


class Tracker:
    """Idempotent MLflow logging for one experiment directory."""

    def __init__(self, *, tracking_uri: str, experiment_name: str, uid: str,
                 printer: Callable[[str], None] = print, space_name: str = "", quality: str = "accuracy",
                 space: Any = None, run_tags: dict[str, str] | None = None, description: str = "",
                 in_process: bool = True) -> None:
        self.tracking_uri, self.experiment_name, self.uid = tracking_uri, experiment_name, uid
        # The settings a tracker in a process of its own is made from (all but the printer, which stays here).
        self._settings = dict(tracking_uri=tracking_uri, experiment_name=experiment_name, uid=uid,
                              space_name=space_name, quality=quality, space=space, run_tags=run_tags,
                              description=description)
        self._worker: Any = None if in_process else "pending"  # a TrackingProcess once started
        self.space = space  # names each candidate's per-layer choices; None: the encoding alone
        #: What tells this search apart from another in one runs table (space, searcher, device, experiment).
        self.run_tags = dict(run_tags or {})
        self.description = description
        self._supernet: list[Any] | None = None  # [run id, last step logged, status]
        self.printer = printer
        self.available = True
        self._client: Any = None
        self._experiment_id: str | None = None
        self._parent_id: str | None = None
        self._runs: dict[str, tuple[str, str]] | None = None  # candidate_id -> (run_id, status)
        self._retrain_runs: dict[str, tuple[str, str]] | None = None  # retrain_id -> (run_id, status)
        self.space_name = space_name
        self.quality = quality
        self._queue: ThreadPoolExecutor | None = None
        self._run_writer: Any = "unknown"  # a FinishedRunWriter, or None: decided on first use

    def _call(self, what: str, method: str, *args: Any, wait: bool, guard: bool = True) -> Any:
        """Run ``self.<method>(*args)`` in submission order: on the tracker's thread, or, with
        ``in_process=False``, in its own process (where MLflow's Python never holds this process's GIL:
        on a 2-core machine that decides whether logging slows Tune's event loop). ``guard``: a failure
        marks MLflow unavailable (said once) instead of raising."""
        if self._worker is not None:
            return self._process_call(what, method, args, wait=wait, guard=guard)
        if self._queue is None:
            self._queue = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hwnas-mlflow")
        fn = getattr(self, method)
        future = self._queue.submit(self._guard, what, lambda: fn(*args)) if guard else self._queue.submit(fn, *args)
        return future.result() if wait else None

    def _process_call(self, what: str, method: str, args: tuple, *, wait: bool, guard: bool) -> Any:
        from .tracking_process import TrackingProcess

        if self._worker == "pending":
            self._worker = TrackingProcess(Tracker, self._settings)
        try:
            future = self._worker.submit(what, method, args, guard, wait)
            if not wait:
                return None
            result, said = future.result()
        except Exception as exc:  # noqa: BLE001 - the process died (killed): log later, as for a dead server
            result, said = None, [] if not self.available else [
                f"[mlflow] {what} failed (the tracking process ended: {type(exc).__name__}); records stay in the "
                f"journal and are logged by the next `hwnas resume`."]
            self.available = False
        for line in said:
            self.printer(line)
        return result

    def prepare(self) -> None:
        """Start the tracking process now (its imports take seconds), without waiting for it."""
        if self._worker is not None:
            self._call("starting the tracking process", "_ready", wait=False)

    def _ready(self) -> None:
        """Nothing: the call that makes the tracking process start."""

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state; threads, processes and clients stay behind.
        return {**self.__dict__, "_queue": None, "_client": None, "_run_writer": "unknown",
                "_worker": None if self._worker is None else "pending"}

    def close(self) -> None:
        """Wait for queued logging to finish and stop the background thread or process."""
        if self._queue is not None:
            self._queue.shutdown(wait=True)
        if self._worker not in (None, "pending"):
            for line in self._worker.shutdown():
                self.printer(line)
            self._worker = "pending"

    # ------------------------------------------------------------------ plumbing
    @property
    def client(self) -> Any:
        if self._client is None:
            _quiet_mlflow()
            from mlflow.tracking import MlflowClient

            if self.tracking_uri.startswith("sqlite:///"):
                create_sqlite_store(Path(self.tracking_uri[len("sqlite:///"):]))
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
            if self.tracking_uri.startswith("sqlite:///"):
                relax_commit_sync(self._client)
        return self._client

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run an MLflow call; on failure mark the tracker unavailable and say so once."""
        if not self.available:
            return None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - any backend failure means "log later", never "crash"
            self.available = False
            self.printer(
                f"[mlflow] {what} failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                f"records stay in the journal and are logged by the next `hwnas resume`."
            )
            return None

    def _experiment(self) -> str:
        if self._experiment_id is None:
            exp = self.client.get_experiment_by_name(self.experiment_name)
            if exp is None:
                location = None
                if self.tracking_uri.startswith("sqlite:///"):
                    root = Path(self.tracking_uri[len("sqlite:///"):]).parent / "mlartifacts"
                    location = (root / self.experiment_name).resolve().as_uri()
                self._experiment_id = self.client.create_experiment(self.experiment_name, artifact_location=location)
                tags: dict[str, str] = {}
            else:
                self._experiment_id = exp.experiment_id
                tags = exp.tags
            self._describe_experiment(tags)
        return self._experiment_id

    def _describe_experiment(self, tags: dict[str, str]) -> None:
        """MLflow 3's UI opens an experiment of no kind on its GenAI overview (traces); marked as model
        development it opens on its runs. A description says what the experiment holds."""
        if tags.get(EXPERIMENT_KIND_TAG) != MODEL_DEVELOPMENT:
            self.client.set_experiment_tag(self._experiment_id, EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT)
        if self.description and not tags.get(NOTE_TAG):
            self.client.set_experiment_tag(self._experiment_id, NOTE_TAG, self.description)

    def _find(self, role: str) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self._experiment()], filter_string=f"tags.{UID_TAG} = '{self.uid}' and tags.{ROLE_TAG} = '{role}'",
                max_results=1000, page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    # ------------------------------------------------------------------ parent run
    def start(self, *, params: dict[str, Any], tags: dict[str, str]) -> None:
        ids = self._call("starting the search run", "_start", params, tags, wait=True)
        if ids:  # the same values on the thread; from the tracking process, what this side needs to know
            self._experiment_id, self._parent_id = ids

    def _start(self, params: dict[str, Any], tags: dict[str, str]) -> tuple[str, str]:
        from mlflow.entities import Param, RunTag

        found = self._find("search")
        if found:
            self._parent_id = found[0].info.run_id
            if found[0].info.status != "RUNNING":
                self.client.update_run(self._parent_id, status="RUNNING")
            return self._experiment(), self._parent_id
        # Two searches of one config name stay apart in the runs table: the name carries the date and uid.
        name = f"{tags.get('hwnas_experiment', self.experiment_name)} {time.strftime('%Y-%m-%d %H:%M')} {self.uid[:8]}"
        run = self.client.create_run(
            self._experiment(), run_name=name,
            tags={UID_TAG: self.uid, ROLE_TAG: "search", **self.run_tags,
                  **{k: v for k, v in tags.items() if k != "note"}},
        )
        self._parent_id = run.info.run_id
        self.client.log_batch(self._parent_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                              tags=[RunTag(NOTE_TAG, tags.get("note", ""))])
        return self._experiment(), self._parent_id

    def log_dataset(self, *, name: str, identity: dict[str, Any], source: str) -> None:
        """Record the data as the search run's input (MLflow dedups a dataset logged again on resume)."""
        self._call("logging the dataset", "_log_dataset", name, identity, source, wait=False)

    def _log_dataset(self, name: str, identity: dict[str, Any], source: str) -> None:
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        from core.digest import json_digest

        dataset = MetaDataset(resolve_dataset_source(source), name=name, digest=json_digest(identity))
        self.client.log_inputs(self._parent_id, datasets=[
            DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "training")])])

    @property
    def parent_run_id(self) -> str | None:
        return self._parent_id

    @property
    def experiment_id(self) -> str | None:
        return self._experiment_id

    # ------------------------------------------------------------------ the supernet
    def log_supernet(self, info: dict[str, Any], *, params: dict[str, Any]) -> None:
        """A chunk of supernet training on its nested ``supernet`` run: each step's loss, train accuracy and
        learning rate, and the chunk's steps per second. Steps a resumed training does again (from its
        last checkpoint) were logged already and are skipped, so every step is in the history once."""
        self._call("logging the supernet", "_log_supernet", dict(info), params, wait=False)

    def _supernet_run(self, params: dict[str, Any]) -> list[Any]:
        """[run id, last step logged, status] of the supernet's run, created (RUNNING) if there is none."""
        if self._supernet is None:
            from mlflow.entities import Param

            found = self._find("supernet")
            if found:
                run = found[0]
                history = self.client.get_metric_history(run.info.run_id, "loss")
                self._supernet = [run.info.run_id, max((m.step for m in history), default=0), run.info.status]
            else:
                if self._parent_id is None:
                    raise RuntimeError("the search run was not started")
                run_id = self.client.create_run(
                    self._experiment(), run_name="supernet",
                    tags={UID_TAG: self.uid, ROLE_TAG: "supernet", "mlflow.parentRunId": self._parent_id,
                          **self.run_tags}).info.run_id
                self.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
                self._supernet = [run_id, 0, "RUNNING"]
        return self._supernet

    def _log_supernet(self, info: dict[str, Any], params: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        run = self._supernet_run(params)
        run_id, last, status = run
        if status == "FINISHED":
            return
        ts = int(time.time() * 1000)
        steps = [h for h in info.get("history", ()) if int(h["step"]) > last]
        metrics = [Metric(k, float(h[k]), ts, int(h["step"])) for h in steps for k in SUPERNET_CURVES if k in h]
        if steps and info.get("seconds"):
            metrics.append(Metric("steps_per_s", len(info["history"]) / float(info["seconds"]), ts, int(info["step"])))
        for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(run_id, metrics=metrics[i:i + 1000])
        run[1] = max([last] + [int(h["step"]) for h in steps])
        if int(info["step"]) >= int(info.get("steps", info["step"] + 1)):
            self.client.set_terminated(run_id, "FINISHED")
            run[2] = "FINISHED"

    # ------------------------------------------------------------------ candidates
    def log_candidate(self, record: dict[str, Any]) -> None:
        self._call(f"logging candidate {record['candidate_id']}", "_log_candidate", record, wait=False)

    def _known_runs(self) -> dict[str, tuple[str, str]]:
        if self._runs is None:
            self._runs = {}
            for run in self._find("candidate"):
                cid = run.data.tags.get("candidate_id")
                prev = self._runs.get(cid)
                if prev is None or run.info.status == "FINISHED":  # prefer the finished one
                    self._runs[cid] = (run.info.run_id, run.info.status)
        return self._runs

    def _log_candidate(self, rec: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param

        if self._parent_id is None:
            raise RuntimeError("the search run was not started")
        cid = rec["candidate_id"]
        known = self._known_runs()
        if cid in known and known[cid][1] == "FINISHED":
            return
        # The run spans the candidate's evaluation (older journals lack its times: then the logging time).
        started = float(rec.get("eval_started") or rec.get("time", 0))
        ended = started + float(rec.get("eval_seconds") or 0.0)
        run_name = f"g{int(rec['generation']):03d}-{cid[:8]}"
        tags = {UID_TAG: self.uid, ROLE_TAG: "candidate", "candidate_id": cid, "mlflow.parentRunId": self._parent_id,
                **self.run_tags}
        writer = self._finished_runs()
        if cid not in known and writer is not None:  # one transaction instead of three
            known[cid] = (writer.write(
                self._experiment(), run_name=run_name, start_ms=int(started * 1000), end_ms=int(ended * 1000),
                tags=tags, params=self._candidate_params(rec), metrics=readable_metrics(rec)), "FINISHED")
            return
        if cid in known:
            run_id = known[cid][0]  # created before a crash: finish it instead of making another
        else:
            run_id = self.client.create_run(self._experiment(), run_name=run_name, start_time=int(started * 1000),
                                            tags=tags).info.run_id
            known[cid] = (run_id, "RUNNING")
        metrics = [Metric(k, v, int(ended * 1000), 0) for k, v in readable_metrics(rec).items()]
        params = [Param(k, v) for k, v in self._candidate_params(rec).items()]
        self.client.log_batch(run_id, metrics=metrics, params=params)
        self.client.set_terminated(run_id, "FINISHED", end_time=int(ended * 1000))
        known[cid] = (run_id, "FINISHED")

    def _finished_runs(self) -> Any:
        """The store's one-transaction writer of finished runs, or None where the client must write
        (a tracking server; see :mod:`orchestrator.finished_runs`)."""
        if self._run_writer == "unknown":
            from .finished_runs import FinishedRunWriter

            self._run_writer = FinishedRunWriter.for_client(self.client)
        return self._run_writer

    def _candidate_params(self, rec: dict[str, Any]) -> dict[str, str]:
        """Id, encoding, space and generation, and each searched layer's choice by name (``layer_03 =
        ibn_e6_k5``): params, so the UI can group runs and draw parallel coordinates by them."""
        params = {"candidate_id": rec["candidate_id"], "encoding": rec["encoding"], "space": rec["space"],
                  "generation": str(int(rec["generation"]))}
        if self.space is not None and self.space.name == rec["space"]:
            encoding = self.space.parse(rec["encoding"])
            params.update({dim.name: dim.choices[v] for dim, v in zip(self.space.dims, encoding)})
        return params

    def candidate_run_ids(self) -> dict[str, str]:
        """candidate_id -> its MLflow run id, for every candidate logged (after :meth:`sync`)."""
        return dict(self._call("reading the candidate runs", "_run_ids", wait=True) or {})

    def _run_ids(self) -> dict[str, str]:
        return {cid: run_id for cid, (run_id, _) in self._known_runs().items()}

    def sync(self, records: Iterable[dict[str, Any]]) -> bool:
        """Log every record not yet finished in MLflow; True if MLflow now holds them all."""
        return bool(self._call("syncing candidates", "_sync", list(records), wait=True, guard=False))

    def _sync(self, records: list[dict[str, Any]]) -> bool:
        self.available = True  # a new attempt: the server may be back
        for rec in records:
            self._guard(f"logging candidate {rec['candidate_id']}", lambda rec=rec: self._log_candidate(rec))
        return self.available

    # ------------------------------------------------------------------ retrains
    def _retrain_run(self, request: dict[str, Any]) -> tuple[str, str]:
        """(run id, status) of the retrain's nested run, created (RUNNING) if it has none yet."""
        if self._retrain_runs is None:
            self._retrain_runs = {}
            for run in self._find("retrain"):
                rid = run.data.tags.get("retrain_id")
                if rid not in self._retrain_runs or run.info.status == "FINISHED":
                    self._retrain_runs[rid] = (run.info.run_id, run.info.status)
        rid = request["retrain_id"]
        if rid not in self._retrain_runs:
            from mlflow.entities import Param

            if self._parent_id is None:
                raise RuntimeError("the search run was not started")
            run_id = self.client.create_run(
                self._experiment(), run_name=f"retrain-{request['candidate_id'][:8]}-{rid[-8:]}",
                tags={UID_TAG: self.uid, ROLE_TAG: "retrain", "retrain_id": rid,
                      "candidate_id": request["candidate_id"], "source": request["source"],
                      "mlflow.parentRunId": self._parent_id, **self.run_tags},
            ).info.run_id
            params = {"retrain_id": rid, "candidate_id": request["candidate_id"], "encoding": request["encoding"],
                      "source": request["source"],
                      **{f"retrain.{k}": v for k, v in request["settings"].items()}}
            self.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
            self._retrain_runs[rid] = (run_id, "RUNNING")
        return self._retrain_runs[rid]

    def log_retrain_epochs(self, request: dict[str, Any], epochs: Iterable[dict[str, Any]]) -> None:
        """Each epoch's numbers at ``step`` = the epoch, stamped with the time the epoch ended: logging one
        again writes the identical entry, which MLflow's SQL stores keep once."""
        epochs = list(epochs)
        self._call(f"logging retrain {request['retrain_id']}", "_log_retrain_epochs", request, epochs, wait=False)

    def _log_retrain_epochs(self, request: dict[str, Any], epochs: list[dict[str, Any]]) -> None:
        from mlflow.entities import Metric

        run_id, status = self._retrain_run(request)
        if status == "FINISHED":
            return
        metrics = []
        for rec in epochs:
            step, ts = int(rec["epoch"]), int(float(rec.get("time", 0)) * 1000)
            metrics += [Metric(k, float(v), ts, step) for k, v in rec.items()
                        if k not in ("epoch", "time", "retrain_id", "schema") and isinstance(v, (int, float))]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def finish_retrain(self, request: dict[str, Any], record: dict[str, Any], *, quality: str,
                       model_name: str) -> None:
        """The retrain's final numbers, its ONNX model (MLflow's ONNX flavor, with signature and input
        example), its PyTorch weights and, with ``retrain.register``, a Model Registry version."""
        self._call(f"finishing retrain {request['retrain_id']}", "_finish_retrain", request, record, quality, model_name,
                   wait=False)

    def _finish_retrain(self, request: dict[str, Any], record: dict[str, Any], quality: str, model_name: str) -> None:
        from mlflow.entities import Metric

        run_id, status = self._retrain_run(request)
        if status == "FINISHED":
            return
        final = dict(record["final"])
        values = {**{k: v for k, v in final.items() if k not in ("epoch", "time")}, "latency_ms": record["latency_ms"],
                  "latency_p90_ms": record["latency_p90_ms"], "params": record["params"], "madds": record["madds"],
                  "onnx_max_rel_diff": record["onnx_max_rel_diff"],
                  **{f"supernet_{k}": v for k, v in request["supernet"].items()}}
        ts, step = int(float(final.get("time", 0)) * 1000), int(record["epochs"])
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), ts, step) for k, v in values.items()
                                               if isinstance(v, (int, float))])
        files = record["files"]
        self.client.log_artifact(run_id, files["weights"], artifact_path="pytorch")
        self.client.log_artifact(run_id, files["arch"], artifact_path="pytorch")
        model_uri = self._log_onnx(run_id, files["onnx"])
        if request["settings"]["register"]:
            self._register(model_uri, model_name, request, record, {quality: final.get(quality)})
        self.client.set_terminated(run_id, "FINISHED")
        self._retrain_runs[request["retrain_id"]] = (run_id, "FINISHED")

    def _log_onnx(self, run_id: str, path: str) -> str:
        import mlflow
        import numpy as np
        import onnx

        import onnxruntime as ort
        from mlflow.models import infer_signature

        model = onnx.load(path)
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        # The graph's one input: a batch of one image, NCHW, as the dataset normalises it.
        example = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        outputs = dict(zip(names, session.run(names, {session.get_inputs()[0].name: example})))
        signature = infer_signature(example, outputs if len(outputs) > 1 else outputs[names[0]])
        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(run_id=run_id, nested=True):
            # The requirements given: MLflow would otherwise infer them in a subprocess, seconds per model.
            info = mlflow.onnx.log_model(model, name="model", input_example=example, signature=signature,
                                         save_as_external_data=False,
                                         pip_requirements=[f"onnx=={onnx.__version__}",
                                                           f"onnxruntime=={ort.__version__}"])
        self.client.set_tag(run_id, "model_uri", info.model_uri)
        return info.model_uri

    def _close_supernet(self) -> None:
        """The supernet's run finished, also when its last chunk was trained but never logged (a crash)."""
        open_runs = ([self._supernet[0]] if self._supernet[2] != "FINISHED" else []) if self._supernet else [
            run.info.run_id for run in self._find("supernet") if run.info.status != "FINISHED"]
        for run_id in open_runs:
            self.client.set_terminated(run_id, "FINISHED")
        if self._supernet:
            self._supernet[2] = "FINISHED"

    def _log_candidate_model(self, run_id: str, path: Path) -> None:
        """The candidate's ONNX model on its run, once (a resumed finalize finds its ``model_uri`` tag); the
        run keeps the end time of its evaluation, which logging a model through a fluent run would move."""
        run = self.client.get_run(run_id)
        if "model_uri" in run.data.tags:
            return
        self._log_onnx(run_id, str(path))
        self.client.set_terminated(run_id, "FINISHED", end_time=run.info.end_time)

    def _register(self, model_uri: str, name: str, request: dict[str, Any], record: dict[str, Any],
                  scores: dict[str, Any]) -> None:
        """A registry version, unless one for this retrain exists (a driver that died after registering)."""
        from mlflow.exceptions import MlflowException

        rid = request["retrain_id"]
        try:
            self.client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        if any(v.tags.get("retrain_id") == rid for v in self.client.search_model_versions(f"name='{name}'")):
            return
        tags = {"retrain_id": rid, "candidate_id": request["candidate_id"], "space": self.space_name,
                "encoding": request["encoding"], "latency_ms": record["latency_ms"], "params": record["params"],
                "madds": record["madds"], **{k: v for k, v in scores.items() if v is not None}}
        run_id = self._retrain_runs[rid][0]
        # The client, not mlflow.register_model: that one prints to the process's stderr.
        model_id = model_uri[len("models:/"):] if model_uri.startswith("models:/") else None
        version = self.client.create_model_version(name, model_uri, run_id=run_id, model_id=model_id,
                                                   tags={k: str(v) for k, v in tags.items()})
        self.client.set_tag(run_id, "registered_model", f"models:/{name}/{version.version}")
        self.printer(f"[mlflow] retrain {rid} registered as models:/{name}/{version.version}")

    def sync_retrains(self, state: Any) -> None:
        """Log the journal's retrain epochs and results MLflow may lack (after a driver or server outage)."""
        self._call("syncing retrains", "_sync_retrains", state, wait=True)

    def _sync_retrains(self, state: Any) -> None:
        for rid, request in state.retrain_requests.items():
            epochs = [state.retrain_epochs[rid][e] for e in sorted(state.retrain_epochs.get(rid, {}))]
            if epochs:
                self._guard(f"logging retrain {rid}", lambda: self._log_retrain_epochs(request, epochs))
            done = state.retrains.get(rid)
            if done is not None:
                self._guard(f"finishing retrain {rid}", lambda: self._finish_retrain(
                    request, done, self.quality, request["settings"]["model_name"] or self.experiment_name))

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        """Metrics of the experiment's run at ``step`` (a joint search's controller), queued: training never waits."""
        self._call("logging the controller", "_log_parent_metrics", dict(metrics), step, wait=False)

    def _log_parent_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        if self._parent_id is None:
            raise RuntimeError("the search run was not started")
        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(self._parent_id, metrics=items[i:i + 1000])

    def log_artifacts(self, paths: Iterable[Path], *, artifact_path: str) -> None:
        """Files attached to the experiment's run under ``artifact_path``."""
        self._call(f"logging {artifact_path} artifacts", "_log_parent_artifacts", [str(p) for p in paths],
                   artifact_path, wait=True)

    def _log_parent_artifacts(self, paths: list[str], artifact_path: str | None) -> None:
        for path in paths:
            self.client.log_artifact(self._parent_id, path, artifact_path=artifact_path)

    def log_ranking(self, metrics: dict[str, float], artifacts: Iterable[Path]) -> None:
        """The ranking check on the experiment's run: its numbers and its plot."""
        self._call("logging the ranking check", "_log_ranking", dict(metrics), [str(p) for p in artifacts], wait=True)

    def _log_ranking(self, metrics: dict[str, float], artifacts: list[str]) -> None:
        self._log_parent_metrics(metrics, 0)
        self._log_parent_artifacts(artifacts, "retrain")

    # ------------------------------------------------------------------ the end
    def finish(self, *, pareto_ids: set[str], artifacts: Iterable[tuple[Path, str | None]],
               metrics: dict[str, float], models: dict[str, Path] | None = None) -> bool:
        """Tag every candidate run ``pareto`` true/false, log the Pareto candidates' ONNX ``models`` on
        their own runs, attach artifacts to the search run and finish it."""
        return bool(self._call("finishing the search run", "_finish", set(pareto_ids), list(artifacts), dict(metrics),
                               dict(models or {}), wait=True))

    def _finish(self, pareto_ids: set[str], artifacts: Iterable[tuple[Path, str | None]],
                metrics: dict[str, float], models: dict[str, Path]) -> bool:
        from mlflow.entities import Metric

        for cid, (run_id, _) in self._known_runs().items():
            self.client.set_tag(run_id, "pareto", "true" if cid in pareto_ids else "false")
        for cid, path in sorted(models.items()):
            self._log_candidate_model(self._known_runs()[cid][0], path)
        self._close_supernet()
        for path, artifact_dir in artifacts:
            self.client.log_artifact(self._parent_id, str(path), artifact_path=artifact_dir)
        self.client.log_batch(self._parent_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
        self.client.set_terminated(self._parent_id, "FINISHED")
        return True

    def fail(self) -> None:
        if self._parent_id is not None:
            self._call("marking the search run failed", "_fail", wait=True)

    def _fail(self) -> None:
        self.client.set_terminated(self._parent_id, "FAILED")
