"""Run many ``hwnas`` commands without paying Python's start-up and hwnas's imports for each one.

A server process imports the CLI once (Ray Tune, PyTorch, pymoo: seconds) and forks a child per command.
The child is the CLI as a user runs it, less the interpreter start: ``orchestrator.cli.main(argv)`` in its
own working directory and environment, stdout and stderr to files, its exit code the process's, and
Python's normal exit (atexit handlers, a Ray it started shut down). The bad-input table runs its
160-odd cases this way: minutes of imports become milliseconds of forks.

Protocol: one JSON request per line on the server's stdin (``id``, ``argv``, ``cwd``, ``env``, ``out``,
``err``); one JSON reply per line on its stdout when that child exits (``id``, ``returncode``).
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class CliForkServer:
    """The client side: :meth:`run` is thread-safe and returns ``(returncode, stdout, stderr)``."""

    def __init__(self, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, env=env, cwd=ROOT)
        self._ids = itertools.count()
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            reply = json.loads(line)
            with self._lock:
                future = self._pending.pop(reply["id"])
            future.set_result(reply["returncode"])
        with self._lock:  # the server died: nobody waits forever
            for future in self._pending.values():
                future.set_exception(RuntimeError("the CLI fork server exited"))

    def run(self, argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str, str]:
        request_id = next(self._ids)
        out_dir = cwd.parent / f".{cwd.name}.cli-output"
        out_dir.mkdir(exist_ok=True)  # beside the case's directory, so its snapshot never sees them
        out, err = out_dir / f"{request_id}.out", out_dir / f"{request_id}.err"
        future: Future = Future()
        with self._lock:
            self._pending[request_id] = future
            self._proc.stdin.write(json.dumps({"id": request_id, "argv": argv, "cwd": str(cwd), "env": env,
                                               "out": str(out), "err": str(err)}) + "\n")
            self._proc.stdin.flush()
        code = future.result(timeout=timeout)
        return code, out.read_text(), err.read_text()

    def close(self) -> None:
        """Stop the server; a child still running (a case that hung) is killed with it, by PID."""
        import signal

        from core.reaper import descendants

        below = descendants(self._proc.pid)
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid, _started in below:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self._proc.kill()
            self._proc.wait(timeout=30)


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the CLI run in ``request``; never return."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path in ((1, request["out"]), (2, request["err"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.argv = ["hwnas", *request["argv"]]
    from orchestrator.cli import main

    sys.exit(main(request["argv"]))  # a normal exit: atexit handlers (Ray's shutdown among them) run


def _serve() -> None:
    import orchestrator.cli  # noqa: F401  (the imports every child then shares)
    import orchestrator.config  # noqa: F401

    replies = threading.Lock()
    reply_fd = os.dup(1)  # written unbuffered: a fork never inherits half a reply in a buffer

    def wait(pid: int, request_id: int) -> None:
        _, status = os.waitpid(pid, 0)
        reply = json.dumps({"id": request_id, "returncode": os.waitstatus_to_exitcode(status)}) + "\n"
        with replies:
            os.write(reply_fd, reply.encode())

    waiters = []
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os.close(reply_fd)
            try:
                _child(request)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                sys.stdout.flush()
                sys.stderr.flush()
                raise SystemExit(code)
        waiter = threading.Thread(target=wait, args=(pid, request["id"]))
        waiter.start()
        waiters.append(waiter)
    for waiter in waiters:
        waiter.join()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    _serve()
