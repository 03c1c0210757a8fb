"""Hardware probe of an edge node and the backend choice for a bundle.

``probe()`` looks for, in this order of preference for running bundles:

- **Loihi 2**: Intel's lava-loihi importable (``stc.lava.executor.loihi_available``: the
  ``lava.utils.loihi`` check and ``lava.magma.core.model.nc.model``) and a board reachable
  (lava-loihi's ``is_installed()`` is its own reachability check; set ``STC_LOIHI_BOARD`` to
  name a board).
- **CUDA GPUs**: name, memory (bytes) and driver version through NVML (``pynvml`` from
  nvidia-ml-py), else through ``torch.cuda`` (no driver version then).
- **Lava's simulator** (lava-nc installed: ``lava.magma`` importable); runs fixed-point graphs
  bit-exactly, slowly, so it is chosen only when a deployment asks for ``lava-sim``.
- **CPU**: logical cores, architecture, physical memory (bytes).

``choose_backend(hw, has_fixed, requested)`` applies loihi > gpu > cpu unless the deployment
names a device, and returns the reason. Tests (and operators checking a roll-out plan) can
inject probe results: the environment variable ``STC_EDGE_PROBE`` holds a JSON object (or
``@path`` of a JSON file) whose keys replace the probed ones (``gpus``, ``loihi``,
``lava_sim``, ``cpu``).
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import platform
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROBE_ENV = "STC_EDGE_PROBE"
DEVICES = ("cpu", "gpu", "lava-sim", "loihi")
_ALIASES = {"cuda": "gpu"}


@dataclass
class Availability:
    """Whether a device is usable and why (``detail``: what was found, or the failure)."""

    available: bool
    detail: str


@dataclass
class GpuInfo:
    """One CUDA GPU: index, name, memory (bytes), driver version ('' if unknown), source."""

    index: int
    name: str
    memory_bytes: int
    driver: str
    source: str


@dataclass
class CpuInfo:
    """Logical cores, machine architecture (``platform.machine()``), physical memory (bytes)."""

    cores: int
    arch: str
    memory_bytes: int


@dataclass
class Hardware:
    """What one node has (see the module docstring); ``injected`` names replaced keys."""

    hostname: str
    cpu: CpuInfo
    gpus: list[GpuInfo]
    gpu_detail: str
    lava_sim: Availability
    loihi: Availability
    probed_at: str
    injected: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-serialisable form (also the shape ``STC_EDGE_PROBE`` overrides use)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Hardware:
        """Inverse of ``to_dict``. Raises ValueError on a missing or malformed key."""
        try:
            return cls(hostname=str(d["hostname"]), cpu=CpuInfo(**d["cpu"]),
                       gpus=[GpuInfo(**g) for g in d["gpus"]], gpu_detail=str(d["gpu_detail"]),
                       lava_sim=Availability(**d["lava_sim"]), loihi=Availability(**d["loihi"]),
                       probed_at=str(d["probed_at"]), injected=list(d.get("injected", [])))
        except (KeyError, TypeError) as e:
            raise ValueError(f"hardware record is malformed: {e}") from None

    def devices(self) -> list[str]:
        """Usable devices, best first (loihi, gpu, cpu, then lava-sim)."""
        out = []
        if self.loihi.available:
            out.append("loihi")
        if self.gpus:
            out.append("gpu")
        out.append("cpu")
        if self.lava_sim.available:
            out.append("lava-sim")
        return out

    def summary(self) -> str:
        """One line: ``2 cores x86_64 7.8 GiB; gpu: none; lava-sim; no loihi``."""
        gpu = ", ".join(f"{g.name} {g.memory_bytes / 2**30:.0f} GiB" for g in self.gpus) or "none"
        return (f"{self.cpu.cores} cores {self.cpu.arch} {self.cpu.memory_bytes / 2**30:.1f} GiB"
                f"; gpu: {gpu}; {'lava-sim' if self.lava_sim.available else 'no lava-sim'}; "
                f"{'loihi' if self.loihi.available else 'no loihi'}")


def _memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 0


def probe_cpu() -> CpuInfo:
    """Logical cores (``os.cpu_count``), architecture and physical memory of this machine."""
    return CpuInfo(cores=os.cpu_count() or 1, arch=platform.machine() or "unknown",
                   memory_bytes=_memory_bytes())


def probe_gpus() -> tuple[list[GpuInfo], str]:
    """CUDA GPUs through NVML, else torch.cuda; returns (gpus, detail). Never raises."""
    nvml_error = ""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            driver = pynvml.nvmlSystemGetDriverVersion()
            driver = driver.decode() if isinstance(driver, bytes) else str(driver)
            gpus = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = pynvml.nvmlDeviceGetName(h)
                gpus.append(GpuInfo(i, name.decode() if isinstance(name, bytes) else str(name),
                                    int(pynvml.nvmlDeviceGetMemoryInfo(h).total), driver,
                                    "nvml"))
        finally:
            pynvml.nvmlShutdown()
        return gpus, f"NVML: {len(gpus)} GPU(s), driver {driver}"
    except Exception as e:  # noqa: BLE001 - NVML missing or no driver
        nvml_error = f"NVML unavailable ({type(e).__name__}: {e})"
    try:
        import torch

        if not torch.cuda.is_available():
            return [], f"{nvml_error}; torch.cuda.is_available() is False"
        gpus = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append(GpuInfo(i, p.name, int(p.total_memory), "", "torch"))
        return gpus, f"{nvml_error}; torch.cuda: {len(gpus)} GPU(s)"
    except Exception as e:  # noqa: BLE001
        return [], f"{nvml_error}; torch.cuda failed ({type(e).__name__}: {e})"


def probe_lava_sim() -> Availability:
    """lava-nc installed (``lava.magma`` importable without importing it). Never raises."""
    try:
        spec = importlib.util.find_spec("lava.magma")
    except (ImportError, ValueError) as e:
        return Availability(False, f"lava-nc not importable: {e}")
    if spec is None:
        return Availability(False, "lava-nc is not installed (no lava.magma)")
    return Availability(True, "lava-nc installed: Loihi2SimCfg fixed_pt simulator")


def probe_loihi() -> Availability:
    """Intel's lava-loihi importable and a board reachable. Never raises."""
    try:
        if importlib.util.find_spec("lava.utils") is None:
            return Availability(False, "lava-nc is not installed, so no lava-loihi")
        from stc.lava.executor import loihi_available
    except Exception as e:  # noqa: BLE001
        return Availability(False, f"lava not importable: {type(e).__name__}: {e}")
    if not loihi_available():
        return Availability(False, "lava-loihi (Intel, INRC) is not installed or reports no "
                                   "Loihi 2 system")
    board = os.environ.get("STC_LOIHI_BOARD", "")
    return Availability(True, f"lava-loihi installed, Loihi 2 system reachable"
                              f"{f' (board {board})' if board else ''}")


def _injected() -> dict:
    raw = os.environ.get(PROBE_ENV, "").strip()
    if not raw:
        return {}
    try:
        text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
        d = json.loads(text)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{PROBE_ENV} must be a JSON object or @file: {e}") from None
    if not isinstance(d, dict) or set(d) - {"gpus", "loihi", "lava_sim", "cpu", "hostname"}:
        raise ValueError(f"{PROBE_ENV} may only set gpus, loihi, lava_sim, cpu, hostname; "
                         f"got {sorted(d) if isinstance(d, dict) else type(d).__name__}")
    return d


def probe() -> Hardware:
    """Probe this machine (see the module docstring), then apply ``STC_EDGE_PROBE`` overrides.

    Raises:
        ValueError: ``STC_EDGE_PROBE`` is set but malformed.
    """
    inject = _injected()
    gpus, gpu_detail = ([], "injected") if "gpus" in inject else probe_gpus()
    hw = Hardware(
        hostname=socket.gethostname(), cpu=probe_cpu(), gpus=gpus, gpu_detail=gpu_detail,
        lava_sim=Availability(False, "") if "lava_sim" in inject else probe_lava_sim(),
        loihi=Availability(False, "") if "loihi" in inject else probe_loihi(),
        probed_at=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    if inject:
        d = hw.to_dict()
        d.update(inject)
        d["injected"] = sorted(inject)
        hw = Hardware.from_dict(d)
    return hw


def normalize_device(device: str | None) -> str | None:
    """``cuda`` -> ``gpu``; None/"" / "auto" -> None. Raises ValueError for unknown names."""
    if device in (None, "", "auto"):
        return None
    d = _ALIASES.get(device, device)
    if d not in DEVICES:
        raise ValueError(f"device must be one of auto, {', '.join(DEVICES)} (cuda = gpu); "
                         f"got {device!r}")
    return d


def choose_backend(hw: Hardware, *, has_fixed: bool, requested: str | None = None
                   ) -> tuple[str, str]:
    """Pick the backend for a bundle on this node: (backend, reason).

    Preference loihi > gpu > cpu; Loihi needs the bundle's fixed-point graph. ``requested``
    (a deployment's device) overrides the preference but must be available.

    Raises:
        stc.errors.UnsupportedTargetError: the requested device is absent on this node, or
            needs a fixed graph the bundle lacks (the message names what the node has).
        ValueError: unknown device name.
    """
    from stc.errors import UnsupportedTargetError

    req = normalize_device(requested)
    have = hw.devices()
    if req is not None:
        if req not in have:
            raise UnsupportedTargetError(
                f"deployment asks for device {req!r}, but this node ({hw.hostname}) has only "
                f"{', '.join(have)} ({_why_absent(hw, req)})")
        if req in ("loihi", "lava-sim") and not has_fixed:
            raise UnsupportedTargetError(
                f"deployment asks for device {req!r}, but the bundle has no fixed-point graph "
                "(re-bundle with --fixed)")
        return req, f"requested by the deployment ({req} available: {_detail(hw, req)})"
    if "loihi" in have and has_fixed:
        return "loihi", f"Loihi 2 present ({hw.loihi.detail}); loihi > gpu > cpu"
    skipped = "" if "loihi" not in have else "; Loihi 2 present but the bundle has no fixed graph"
    if "gpu" in have:
        return "gpu", f"no Loihi 2{skipped}; CUDA GPU {hw.gpus[0].name}"
    return "cpu", (f"no Loihi 2 ({hw.loihi.detail}){skipped}; no CUDA GPU ({hw.gpu_detail}); "
                   f"cpu: {hw.cpu.cores} cores {hw.cpu.arch}")


def _detail(hw: Hardware, device: str) -> str:
    return {"loihi": hw.loihi.detail, "lava-sim": hw.lava_sim.detail,
            "gpu": ", ".join(g.name for g in hw.gpus), "cpu": f"{hw.cpu.cores} cores"}[device]


def _why_absent(hw: Hardware, device: str) -> str:
    return {"loihi": hw.loihi.detail, "lava-sim": hw.lava_sim.detail, "gpu": hw.gpu_detail,
            "cpu": ""}[device]
