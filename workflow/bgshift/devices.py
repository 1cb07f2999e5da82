"""Where a torch job runs: which GPU (every GPU job: training, detection, DeepLab), and how
many CPU threads.

Snakemake's `--resources gpu=N` only limits how many GPU jobs run at once; it does not
say which device each one gets. On a workstation each job therefore takes a lock on one
free device (an flock'ed file per device, released when the process ends, even if it is
killed) and exports CUDA_VISIBLE_DEVICES. Under SLURM the scheduler's allocation is used
as it is. With no GPU, the job runs on the CPU, with the threads its rule declares.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import tempfile
import time
from pathlib import Path

LOCK_DIR = Path(os.environ.get("BGSHIFT_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "bgshift-gpu-locks"))


def visible_devices() -> list[str]:
    """Devices this process may use: CUDA_VISIBLE_DEVICES if set, else every GPU nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


class Allocation:
    """A held device (or none); keep the object alive for as long as the device is used."""

    def __init__(self, device: str | None, handle=None):
        self.device, self._handle = device, handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def allocate(devices: list[str] | None = None, lock_dir: Path | None = None, timeout: float = 3600.0,
             under_slurm: bool | None = None) -> Allocation:
    """Lock one free device from `devices` (default: visible_devices()) and export it."""
    under_slurm = "SLURM_JOB_ID" in os.environ if under_slurm is None else under_slurm
    devices = visible_devices() if devices is None else devices
    lock_dir = LOCK_DIR if lock_dir is None else lock_dir
    if under_slurm or not devices:
        return Allocation(devices[0] if devices else None)  # SLURM already chose; or CPU only
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for device in devices:
            handle = open(lock_dir / f"gpu{device}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            os.environ["CUDA_VISIBLE_DEVICES"] = device
            return Allocation(device, handle)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {devices} after {timeout:.0f} s (locks in {lock_dir})")
        time.sleep(1.0)


@contextlib.contextmanager
def torch_device(setting: str = "auto"):
    """The torch device a job runs on, held for the `with` block: `auto` takes a free GPU (by
    lock, or SLURM's) or else the CPU; `cpu`, `cuda` or `cuda:N` are used as given."""
    import torch

    if setting != "auto":
        yield torch.device(setting)
        return
    allocation = allocate()
    try:
        yield torch.device("cuda" if allocation.device is not None and torch.cuda.is_available() else "cpu")
    finally:
        allocation.release()


def use_declared_threads() -> int:
    """torch's CPU threads = the threads the job's rule declares (BGSHIFT_THREADS), so jobs that
    Snakemake runs side by side do not oversubscribe the cores."""
    import torch

    threads = max(1, int(os.environ.get("BGSHIFT_THREADS", os.cpu_count() or 1)))
    torch.set_num_threads(threads)
    return threads
