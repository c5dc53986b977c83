"""NVML GPU detection (nvidia-ml-py): capability skips and the kind backend's GPU preflight."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInfo:
    """What NVML reports; ``reason`` says why no GPU was found."""

    count: int
    names: tuple[str, ...] = ()
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.count > 0


def detect() -> GpuInfo:
    """Ask NVML for GPUs; never raises (no driver or no module simply means no GPU)."""
    try:
        import pynvml
    except ImportError:
        return GpuInfo(0, reason="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return GpuInfo(0, reason=f"NVML found no GPU ({type(exc).__name__}: {exc})")
    try:
        count = pynvml.nvmlDeviceGetCount()
        names = []
        for i in range(count):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return GpuInfo(count, tuple(names), "" if count else "NVML found 0 GPUs")
    finally:
        pynvml.nvmlShutdown()
