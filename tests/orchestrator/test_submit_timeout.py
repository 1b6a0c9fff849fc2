"""`hwnas submit` against a dashboard that accepts connections and never answers: one line, exit 2, in time."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from cli_helpers import run_cli, tiny_config


def test_a_dashboard_that_never_answers_is_one_line_within_the_timeout(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # take every connection, say nothing (a head whose job API is stuck)
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass
    threading.Thread(target=accept, daemon=True).start()
    try:
        config = tiny_config(tmp_path, name="stuck")
        started = time.monotonic()
        proc = run_cli("submit", str(config), "--storage", str(tmp_path / "runs"), "--timeout", "3",
                       "--address", f"http://127.0.0.1:{server.getsockname()[1]}", cwd=tmp_path, timeout=120)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert time.monotonic() - started < 60
        assert "did not answer within 3 s" in proc.stderr and "HINT:" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert not (tmp_path / "runs").exists()
        bad = run_cli("submit", str(config), "--timeout", "0", "--address", "http://127.0.0.1:9", cwd=tmp_path)
        assert bad.returncode == 2 and "--timeout must be a number of seconds > 0" in bad.stderr
    finally:
        stop.set()
        for conn in held:
            conn.close()
        server.close()
