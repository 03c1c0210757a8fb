"""Clear errors (Lava missing, no lava-loihi) and Lava always stopped after a failure."""

import multiprocessing
import os

import numpy as np
import pytest
from lava_nets import even_weights

from stc.errors import UnsupportedTargetError
from stc.lava import compat
from stc.lava.executor import LoihiUnavailableError, load_lava_executable, run_lava_sim
from stc.lava.layers import Cuba, DenseLayer, InputLayer


def _children() -> list[int]:
    """Live child pids of this process, from /proc (no psutil), except Python's own
    multiprocessing resource tracker (started once per interpreter, lives until exit)."""
    me = str(os.getpid())
    kids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"resource_tracker" in fh.read():
                    continue
            kids.append(int(pid))
    return kids


def _tiny():
    rng = np.random.default_rng(0)
    return [InputLayer((4,)), DenseLayer(even_weights(rng, 3, 4), Cuba(1024, 256, 10))]


def test_lava_missing_gives_install_hint(monkeypatch):
    monkeypatch.setattr(compat, "lava_installed", lambda: False)
    with pytest.raises(compat.LavaMissingError, match="lava-nc==0.10.0"):
        compat.import_lava()


def test_loihi_backend_without_lava_loihi_is_a_clear_error():
    with pytest.raises(LoihiUnavailableError, match="lava-loihi") as e:
        load_lava_executable("missing.stcb", backend="loihi")
    assert "lava-sim" in str(e.value) and "INRC" in str(e.value)
    assert isinstance(e.value, UnsupportedTargetError)
    with pytest.raises(ValueError, match="backend"):
        load_lava_executable("missing.stcb", backend="gpu")


@pytest.mark.slow
@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_lava_is_stopped_after_an_error(monkeypatch, exc):
    compat.import_lava()
    from lava.magma.core.process.variable import Var

    stopped = []
    from lava.magma.core.process.process import AbstractProcess

    real_stop = AbstractProcess.stop

    def spy_stop(self):
        stopped.append(type(self).__name__)
        return real_stop(self)

    def boom(self, *a, **k):
        raise exc("injected failure while reading outputs")

    monkeypatch.setattr(Var, "get", boom)
    monkeypatch.setattr(AbstractProcess, "stop", spy_stop)
    x = np.ones((1, 3, 4), np.int32)
    shm_before = set(os.listdir("/dev/shm"))
    with pytest.raises(exc, match="injected"):
        run_lava_sim(_tiny(), x)
    assert stopped, "Lava was not stopped"
    assert multiprocessing.active_children() == []
    assert _children() == []
    assert set(os.listdir("/dev/shm")) - shm_before == set()  # no leaked shared memory


def test_bad_input_is_rejected_before_lava_starts():
    with pytest.raises(ValueError, match=r"\[B, T, 4\]"):
        run_lava_sim(_tiny(), np.ones((2, 4), np.int32))
    with pytest.raises(ValueError, match="integers"):
        run_lava_sim(_tiny(), np.full((1, 2, 4), 0.5))
