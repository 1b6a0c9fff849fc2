"""MLflow logging in a process of its own, beside the search's driver.

MLflow's client and its SQL store are Python-heavy (about 12 ms of CPU per candidate on the SQLite store);
on the driver's own background thread that time is taken under the driver's GIL, from Tune's event loop.
Here a :class:`~orchestrator.tracking.Tracker` lives in one spawned child process and runs the driver's
calls in submission order (a one-worker ``ProcessPoolExecutor``), so logging costs the driver only the
pickling of its arguments.

What the child's tracker would print (an unreachable server, said once) comes back with each call's result
and is printed by the driver's own printer, in order. The child exits when the driver closes the tracker,
and within a second of the driver's death (it watches its parent), so a killed search leaves no process.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable

__all__ = ["TrackingProcess"]

_TRACKER: Any = None  # the child's tracker
_SAID: list[str] = []  # what it printed since the last call returned


class TrackingProcess:
    """The driver's side: submit a tracker method by name; each result comes with the lines it printed."""

    def __init__(self, factory: Callable[..., Any], settings: dict[str, Any]) -> None:
        """``factory(**settings, printer=...)`` makes the child's tracker (the Tracker class, passed by name)."""
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start, initargs=(factory, settings, os.getpid()))
        self._pending: list[Future] = []  # calls not waited for: their lines are printed once they are done

    def submit(self, what: str, method: str, args: tuple, guard: bool, wait: bool) -> Future:
        """Run ``tracker.<method>(*args)`` in the child. The future's result is (its result, the lines printed
        since the last call waited for): lines of calls nobody waits for travel on to the next one."""
        future = self._pool.submit(_run, what, method, args, guard)
        result: Future = Future()
        earlier = self._pending

        def done(_: Future) -> None:
            try:
                value, said = future.result()
            except Exception as exc:  # noqa: BLE001 - handed on to whoever waits
                result.set_exception(exc)
                return
            result.set_result((value, [line for f in earlier for line in _lines(f)] + said))
        future.add_done_callback(done)
        self._pending = [] if wait else [result]  # whoever waits prints everything up to here
        return result

    def shutdown(self) -> list[str]:
        """Wait for every call, stop the child; the lines its last calls printed."""
        said = [line for f in self._pending for line in _lines(f)]
        self._pool.shutdown(wait=True)
        self._pending = []
        return said


def _lines(future: Future) -> list[str]:
    """The lines a finished call printed (the child runs calls in order: an earlier one is done; it is
    never waited for here, in the executor's own thread)."""
    if not future.done() or future.exception() is not None:  # a dead child said nothing more
        return []
    return future.result()[1]


# ------------------------------------------------------------------ in the child
def _start(factory: Callable[..., Any], settings: dict[str, Any], parent: int) -> None:
    global _TRACKER
    _TRACKER = factory(**settings, printer=_SAID.append)
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="hwnas-mlflow-watch").start()
    atexit.register(_exit_at_once)


def _exit_at_once() -> None:
    """Leave without the interpreter's teardown of its modules: with torch and MLflow loaded it takes
    0.8 s, which the driver's ``close`` waited for at the end of every search. Nothing is lost: each call
    committed what it wrote before returning; the store's connections are closed here."""
    client = getattr(_TRACKER, "_client", None)  # None: MLflow was never opened
    try:
        client._tracking_client.store.engine.dispose()
    except AttributeError:  # no client, or a store without an engine (a tracking server): nothing to close
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _watch(parent: int) -> None:
    """Exit when the driver is gone (its process re-parented us): a killed search leaves nothing running."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _run(what: str, method: str, args: tuple, guard: bool) -> tuple[Any, list[str]]:
    fn = getattr(_TRACKER, method)
    value = _TRACKER._guard(what, lambda: fn(*args)) if guard else fn(*args)
    said = list(_SAID)
    _SAID.clear()
    return value, said
