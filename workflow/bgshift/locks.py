"""Snakemake's working-directory lock after a crash.

A killed Snakemake leaves .snakemake/locks behind, and the next run refuses to start
(LockException). Unlocking is safe only when no other Snakemake process still works in that
folder. The Snakefile checks this as it is read, in the main Snakemake process, and removes a
killed run's lock as `snakemake --unlock` does (the lock folder), so a plain rerun of any
command resumes; `bgshift unlock-stale` does the same by hand.
"""
from __future__ import annotations

import os
import shutil
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


def unlock_if_stale(workdir: str | Path = ".") -> str:
    """Remove a lock left by a killed run; refuse while a run is alive. Returns what was done."""
    workdir = Path(workdir).resolve()
    locks = workdir / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return "no lock"
    alive = live_snakemake(workdir)
    if alive:
        raise LiveRun(f"{locks} belongs to a running Snakemake (pid {', '.join(map(str, alive))}); wait for it or stop it")
    shutil.rmtree(locks)  # what `snakemake --unlock` removes
    return f"removed the stale lock of a killed run in {workdir}"


def unlock_before_run(workdir: str | Path = ".") -> str | None:
    """The Snakefile's check, before Snakemake takes its lock: a killed run's lock is removed (and
    said); a live run's is left for Snakemake's own LockException to report."""
    try:
        done = unlock_if_stale(workdir)
    except LiveRun:
        return None
    return None if done == "no lock" else f"bgshift: {done}"
