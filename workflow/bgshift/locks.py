"""Snakemake's working-directory lock after a crash.

A killed Snakemake leaves .snakemake/locks behind, and the next run refuses to start
(LockException). Unlocking is safe only when no Snakemake process still works in that
folder, which is what `bgshift unlock-stale` checks before it runs `snakemake --unlock`
(`make run` calls it first, so rerunning the documented command resumes a killed run).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil


class LiveRun(RuntimeError):
    """The lock belongs to a Snakemake that is still running."""


def live_snakemake(workdir: Path) -> list[int]:
    """PIDs of Snakemake processes (other than this one) whose working directory is workdir."""
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        info = proc.info
        if info["pid"] == os.getpid() or not info["cmdline"] or not info["cwd"]:
            continue
        if any(Path(arg).name == "snakemake" or arg == "snakemake" for arg in info["cmdline"][:3]) and Path(info["cwd"]) == workdir:
            pids.append(info["pid"])
    return pids


def unlock_if_stale(workdir: str | Path = ".", snakemake_args: list[str] | None = None) -> str:
    """Remove a lock left by a killed run; refuse while a run is alive. Returns what was done."""
    workdir = Path(workdir).resolve()
    locks = workdir / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return "no lock"
    alive = live_snakemake(workdir)
    if alive:
        raise LiveRun(f"{locks} belongs to a running Snakemake (pid {', '.join(map(str, alive))}); wait for it or stop it")
    snakemake = Path(sys.executable).with_name("snakemake")
    subprocess.run([str(snakemake), "--unlock", "--cores", "1", *(snakemake_args or [])], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL)
    return f"removed the stale lock of a killed run in {workdir}"
