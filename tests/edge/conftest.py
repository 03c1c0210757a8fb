"""Real agent processes for the edge tests: ``stc edge agent`` on 127.0.0.1 with a free port,
each with its own store; always stopped (SIGTERM, then SIGKILL) after the test."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

_LISTEN = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class AgentProc:
    """One ``stc edge agent`` process; ``address`` once it listens."""

    def __init__(self, store: Path, env: dict | None = None, args: tuple = ()) -> None:
        self.store = Path(store)
        self.lines: list[str] = []
        self.port: int | None = None
        self._ready = threading.Event()
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stc.cli.main", "edge", "agent", "--store", str(store),
             "--port", "0", "--host", "127.0.0.1", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=full_env)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            m = _LISTEN.search(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 60.0) -> AgentProc:
        if not self._ready.wait(timeout) or self.port is None:
            self.stop()
            raise RuntimeError("agent did not start:\n" + "".join(self.lines[-30:]))
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def agents():
    """Factory ``agents(stores, env=None, args=()) -> [AgentProc]`` (started in parallel,
    ready); every process is stopped at the end."""
    started: list[AgentProc] = []

    def start(stores, env=None, args=()):
        procs = [AgentProc(s, env, args) for s in stores]
        started.extend(procs)
        return [p.wait_ready() for p in procs]

    yield start
    for p in started:
        p.stop()


def wait_until(pred, timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll ``pred`` until true or ``timeout`` s passed."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())
