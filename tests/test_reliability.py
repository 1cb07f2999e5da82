"""Killed at random moments and resumed, the demo's data stages end byte-identical to an
uninterrupted run from scratch; no kill leaves a truncated file under a final name."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest

from conftest import VENV_BIN, copy_workflow, digest, run_env, snakemake

TARGET = "accounting"  # every data stage: ingest, splits, drops, segmentation (+ its model), variants, exports


def result_files(workdir: Path) -> dict[str, str]:
    """sha256 of every output file under results/, logs aside (they hold timings)."""
    return digest(workdir / "results", skip=lambda relative: "logs" in relative.parts)


def assert_complete(path: Path) -> None:
    """A file under its final name must be whole: it parses."""
    if path.suffix == ".parquet":
        pq.read_table(path)
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix in (".jpg", ".png"):
        assert cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED) is not None, path
    elif path.suffix == ".pt":
        import torch

        torch.load(path, weights_only=True)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake and every job it started, all at once (no handler runs)."""
    family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    for pid in family:
        try:
            psutil.Process(pid).send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait()


@pytest.mark.slow
def test_killed_and_resumed_run_equals_an_uninterrupted_one(demo_run, tmp_path):
    """Two runs from scratch: the whole demo, uninterrupted (shared with the workflow tests),
    and its data stages killed three times (segmenting, writing variants, exporting) and resumed."""
    expected = result_files(demo_run[0])

    resumed = copy_workflow(tmp_path / "killed")
    rng = random.Random(20261122)  # random kill moments, the same in every CI run
    kills = 0
    # Kill while each kind of writer is at work, whatever the machine's speed: once the stage's
    # first output appears, after a random further delay.
    for stage in ("segment/shards", "variants", "sets"):
        proc = subprocess.Popen(
            [str(VENV_BIN / "snakemake"), "--cores", "2", "--rerun-incomplete", TARGET], cwd=resumed, env=run_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600
        while proc.poll() is None and not any(p.is_file() for p in (resumed / "results" / stage).glob("**/[!.]*")):
            assert time.monotonic() < deadline, f"no {stage} output within 600 s"
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is not None:
            break
        kill_tree(proc)
        kills += 1
        for path in (resumed / "results").rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                assert_complete(path)
        unlock = subprocess.run([str(VENV_BIN / "bgshift"), "unlock-stale"], cwd=resumed, env=run_env(), capture_output=True, text=True)
        assert unlock.returncode == 0 and "removed the stale lock" in unlock.stdout, unlock.stderr  # what `make run` does
    assert kills >= 2, "the run finished before it could be killed twice"
    snakemake(resumed, "--rerun-incomplete", TARGET)

    got = result_files(resumed)
    leftovers = [name for name in got if Path(name).name.startswith(".") and Path(name).name != ".snakemake_timestamp"]
    assert not leftovers, f"temporary files left by killed writers: {leftovers}"
    assert "accounting.json" in got and len(got) > 1000
    assert set(got) <= set(expected), sorted(set(got) - set(expected))[:10]
    assert [name for name in got if got[name] != expected[name]] == []
