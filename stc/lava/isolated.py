"""Run a Lava executable in its own worker process.

Lava's runtime starts its processes with ``multiprocessing``'s *fork*. Forking a process that
already runs other threads, such as a gRPC server's, fails: gRPC skips its fork handlers and
Lava's shared-memory manager dies at start-up (``EOFError`` in ``SharedMemoryManager.start``;
seen with ``stc serve --backend lava-sim``). :class:`IsolatedLavaExecutable` starts a worker
with the *spawn* method (fork + exec: a fresh interpreter with no threads), builds the
``LavaExecutable`` there, and forwards ``infer`` calls over a pipe. The worker also keeps a
crash or a leak inside Lava away from the caller's process.

Messages on the pipe are pickled, between stc's own two processes only; nothing from a
bundle is unpickled (the worker receives the verified IR graph the caller read).
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import threading
import weakref

import numpy as np

_START_TIMEOUT_S = 300.0
_LIVE: weakref.WeakSet = weakref.WeakSet()


def _worker(conn, graph, backend: str) -> None:  # runs in the spawned process
    # Lava calls mp.set_start_method('fork') at import, which raises once a method is set
    # (spawn sets it in this child). Unset it: this worker has no other threads, so Lava's
    # fork is safe here.
    mp.set_start_method(None, force=True)
    try:
        from stc.lava.executor import load_lava_executable

        exe = load_lava_executable(graph, backend)
        conn.send(("ready", exe.inputs, exe.outputs))
    except BaseException as e:  # report every start-up failure to the parent
        conn.send(("error", _portable(e)))
        return
    try:
        while True:
            op, payload = conn.recv()
            if op == "close":
                break
            try:
                out = exe.infer(payload)
                conn.send(("ok", out, getattr(exe, "last_spike_count", None)))
            except Exception as e:
                conn.send(("error", _portable(e)))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        exe.close()
        conn.close()


def _portable(e: BaseException) -> BaseException:
    """The exception itself if it pickles, else a RuntimeError carrying its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")


class IsolatedLavaExecutable:
    """An Executable (CONTRIBUTING.md contract) whose Lava run happens in a spawned worker.

    Args:
        graph: the verified fixed-point ``stc.ir.Graph`` to map and run.
        backend: "lava-sim" | "loihi" (as ``stc.lava.executor.load_lava_executable``).
        name, version: reported in ``name`` / ``version``.
        start_timeout_s: how long to wait for the worker to import Lava and map the graph.

    Raises (at construction, re-raised from the worker): LavaMissingError, LoihiUnavailableError,
    MappingError, ValueError; TimeoutError when the worker does not answer in time.
    ``infer`` re-raises the worker's exception; ``RuntimeError`` if the worker died.
    """

    def __init__(self, graph, backend: str = "lava-sim", name: str = "model",
                 version: str = "1", start_timeout_s: float = _START_TIMEOUT_S) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        # not a daemon: Lava's own processes are children of the worker
        self._proc = ctx.Process(target=_worker, args=(child, graph, backend),
                                 name=f"stc-lava-{name}", daemon=False)
        self._proc.start()
        child.close()
        self._lock = threading.Lock()
        self.name, self.version, self.backend = name, version, backend
        self.last_spike_count: int | None = None
        try:
            msg = self._receive(start_timeout_s, "start")
        except BaseException:
            self._kill()
            raise
        if msg[0] == "error":
            self._kill()
            raise msg[1]
        _, self.inputs, self.outputs = msg
        _LIVE.add(self)

    def _receive(self, timeout: float | None, what: str):
        if not self._conn.poll(timeout):
            raise TimeoutError(f"the Lava worker did not answer {what} within {timeout:.0f} s")
        try:
            return self._conn.recv()
        except EOFError:
            raise RuntimeError(f"the Lava worker process died during {what} "
                               f"(exit code {self._proc.exitcode})") from None

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch in the worker: {input name: [B, ...]} -> {output name: [B, ...]}."""
        with self._lock:
            if not self._proc.is_alive():
                raise RuntimeError("the Lava worker process is not running (closed or died)")
            self._conn.send(("infer", dict(inputs)))
            msg = self._receive(None, "infer")
        if msg[0] == "error":
            raise msg[1]
        self.last_spike_count = msg[2]
        return msg[1]

    def close(self) -> None:
        """Stop the worker (which stops Lava); idempotent."""
        with self._lock:
            if self._proc.is_alive():
                try:
                    self._conn.send(("close", None))
                except (OSError, BrokenPipeError):
                    pass
                self._proc.join(30)
            self._kill()

    def _kill(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        self._conn.close()
        _LIVE.discard(self)


@atexit.register
def _close_all() -> None:
    for exe in list(_LIVE):
        exe.close()
