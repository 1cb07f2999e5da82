"""Killed at random moments and resumed by a bare `snakemake` (no unlock, no flag), the demo ends
byte-identical to an uninterrupted run from scratch, from its data stages through its tables; no
kill leaves a truncated file under a final name."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest

from conftest import VENV_BIN, copy_workflow, digest, run_env

TARGET = "accounting"  # every data stage: ingest, splits, drops, segmentation (+ its model), variants, exports


def result_files(workdir: Path) -> dict[str, str]:
    """sha256 of every output file under results/, aside from what holds timings: logs, benchmarks, index.html."""
    return digest(workdir / "results", skip=lambda relative: relative.parts[0] in ("logs", "benchmarks", "index.html"))


def assert_complete(path: Path) -> None:
    """A file under its final name must be whole: it parses."""
    if path.suffix == ".parquet":
        pq.read_table(path)
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix in (".jpg", ".png"):
        assert cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED) is not None, path
    elif path.suffix == ".pt":  # torch's zip format (ultralytics' pickled models too): a cut file fails its check
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None, path


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake and every job it started, all at once (no handler runs)."""
    family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    for pid in family:
        try:
            psutil.Process(pid).send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait()


def bare_snakemake(workdir: Path, target: str) -> subprocess.Popen:
    """What a user types again after a kill: no --rerun-incomplete, no unlock (profiles/default
    and the Snakefile's stale-lock check make it resume)."""
    return subprocess.Popen([str(VENV_BIN / "snakemake"), "--cores", "2", target], cwd=workdir, env=run_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_during(workdir: Path, target: str, stages: tuple[str, ...], rng: random.Random) -> int:
    """Start the run again and kill it once each stage's first output appears (a glob under
    results/; after a random further delay), whatever the machine's speed; every file left under a
    final name must parse. Returns the number of kills (a run may finish first)."""
    kills = 0
    for stage in stages:
        started = time.time() - 1
        proc = bare_snakemake(workdir, target)
        deadline = time.monotonic() + 600
        while proc.poll() is None and not any(p.is_file() for p in (workdir / "results").glob(stage)):
            assert time.monotonic() < deadline, f"no {stage} output within 600 s"
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stdout.read()[-3000:]
            break
        kill_tree(proc)
        kills += 1
        for path in (workdir / "results").rglob("*"):
            if path.is_file() and not path.name.startswith(".") and path.stat().st_mtime >= started:  # what this run wrote
                assert_complete(path)
        assert (workdir / ".snakemake" / "locks").is_dir(), "the kill left no lock: the resume below would prove nothing"
    return kills


def resume(workdir: Path, target: str) -> None:
    proc = bare_snakemake(workdir, target)
    out, _ = proc.communicate(timeout=1800)
    assert proc.returncode == 0, out[-3000:]
    assert "removed the stale lock of a killed run" in out, out[-3000:]


def assert_same_files(resumed: Path, expected: dict[str, str], minimum: int) -> dict[str, str]:
    got = result_files(resumed)
    leftovers = [name for name in got if Path(name).name.startswith(".") and Path(name).name != ".snakemake_timestamp"]
    assert not leftovers, f"temporary files left by killed writers: {leftovers}"
    assert len(got) > minimum
    assert set(got) <= set(expected), sorted(set(got) - set(expected))[:10]
    assert [name for name in got if got[name] != expected[name]] == []
    return got


@pytest.mark.slow
def test_killed_and_resumed_data_stages_equal_an_uninterrupted_run(demo_run, tmp_path):
    """Two runs from scratch: the whole demo, uninterrupted (shared with the workflow tests),
    and its data stages killed three times (segmenting, writing variants, exporting) and resumed."""
    expected = result_files(demo_run[0])
    resumed = copy_workflow(tmp_path / "killed")
    kills = kill_during(resumed, TARGET, ("segment/shards/**/[!.]*", "variants/**/[!.]*", "sets/**/[!.]*"), random.Random(20261122))
    assert kills >= 2, "the run finished before it could be killed twice"
    resume(resumed, TARGET)
    assert "accounting.json" in assert_same_files(resumed, expected, 1000)


@pytest.mark.slow
def test_killed_and_resumed_evaluation_and_tables_equal_an_uninterrupted_run(demo_run, tmp_path):
    """The demo with its trained checkpoints kept, its seed-1 evaluations and everything after them
    removed: killed while detecting, scoring and writing tables, resumed; every file through the
    tables and findings equals the uninterrupted run's. (Training's own kill-and-resume is exact
    to the byte: test_train.)"""
    source = demo_run[0]
    expected = result_files(source)
    resumed = tmp_path / "killed"
    after_training = {"eval", "plots", "findings", "findings.json", "findings.md", "summary.json", "logs"}

    def left_out(folder: str, names: list[str]) -> list[str]:
        """What detect, score and the reporting rules write (tables/ also holds the data stages' tables);
        seed 1's evaluations only (half the detection time; every table and finding is rewritten)."""
        if Path(folder) == source / "results":
            return [n for n in names if n in after_training - {"eval"} or n == "train"]
        if Path(folder).parent.parent == source / "results" / "eval":  # eval/<model>/<set>: its seeds' folders
            return [n for n in names if n == "seed1"]
        if Path(folder) == source / "results" / "tables":
            return [n for n in names if not n.startswith(("drop_statistics", "segmentation_quality"))]
        return []

    shutil.copytree(source, resumed, symlinks=True, ignore=left_out)
    shutil.copytree(source / "results" / "train", resumed / "results" / "train", copy_function=os.link)  # only read
    plan = subprocess.run([str(VENV_BIN / "snakemake"), "-n", "--cores", "2"], cwd=resumed, env=run_env(), capture_output=True, text=True)
    planned = {line.split()[0] for line in plan.stdout.splitlines() if line[:1].isalpha() and line.split()[-1:] and line.split()[-1].isdigit()}
    assert plan.returncode == 0 and "detect" in planned and not planned & {"train", "segment", "variants", "export"}, plan.stdout[-3000:]
    kills = kill_during(resumed, "all", ("eval/*/*/seed1/**/*.json", "eval/*/*/seed1/metrics.parquet", "tables/metrics.parquet"),
                        random.Random(20261203))
    assert kills >= 2, "the evaluation finished before it could be killed twice"
    resume(resumed, "all")
    got = assert_same_files(resumed, expected, 1000)
    assert {"tables/AP50.md", "findings.md", "summary.json"} <= set(got) and any(name.startswith("eval/") for name in got)
