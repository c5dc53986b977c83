"""GPU detection through NVML (nvidia-ml-py); empty wherever NVML or a driver is missing."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpus:
    names: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.names)

    def tags(self) -> dict[str, str]:
        """MLflow run tags; none without a GPU so CPU runs carry no misleading values."""
        if not self.names:
            return {}
        return {"gpu.count": str(self.count), "gpu.name": ", ".join(sorted(set(self.names)))}


def detect() -> Gpus:
    """The GPUs NVML sees (respecting what the container runtime exposes)."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return Gpus()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # NVMLError_LibraryNotFound / DriverNotLoaded on CPU-only hosts
        return Gpus()
    try:
        names = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return Gpus(tuple(names))
    except pynvml.NVMLError:
        return Gpus()
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
