"""The workflow on a real (single-node) SLURM cluster through the SLURM profile.

tests/cluster/start-slurm.sh installs and starts SLURM (root needed); the test is skipped
when that is impossible and is marked `slurm` so it can be run alone: pytest -m slurm.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, VENV_BIN, copy_workflow, digest, planned_jobs, run_env, snakemake, ultralytics_cache

CLUSTER = REPO / "tests" / "cluster"
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(os.geteuid() != 0 or shutil.which("apt-get") is None,
                                                    reason="starting a SLURM cluster needs root and apt-get")]


@pytest.fixture(scope="module")
def cluster():
    start = subprocess.run(["bash", str(CLUSTER / "start-slurm.sh")], capture_output=True, text=True, timeout=900)
    if start.returncode != 0:
        pytest.fail(f"SLURM did not start:\n{start.stdout}\n{start.stderr}")
    state = start.stdout.strip().splitlines()[-1]
    yield state
    subprocess.run(["bash", str(CLUSTER / "stop-slurm.sh")], timeout=60)


# squeue (no accounting here), polled every few seconds: the plugin's default first wait of
# 40 s after each submission would otherwise be most of the test's time (jobs take seconds).
QUICK_STATUS = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                "--seconds-between-status-checks", "2")


def slurm_run(workdir, *extra, timeout=1500):
    """The SLURM profile exactly as README's cluster section gives it, plus the squeue status
    command that a cluster without accounting needs; fails (never hangs) past the timeout."""
    try:
        return snakemake(workdir, "--profile", "profiles/slurm", "--configfile", "cluster.yaml", *QUICK_STATUS, *extra, timeout=timeout,
                         slurm=True)
    except subprocess.TimeoutExpired:
        queue = subprocess.run(["squeue", "-o", "%i %j %T %R"], capture_output=True, text=True).stdout
        pytest.fail(f"the SLURM run did not finish within {timeout} s; jobs still queued:\n{queue}")


def submitted_ids(state) -> set[str]:
    log = (Path(state) / "log" / "slurmctld.log").read_text()
    return set(re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", log))


@pytest.fixture(scope="module")
def slurm_pipeline(cluster, tmp_path_factory):
    """The reduced demo, every stage through sbatch; returns the workdir, the run's output
    and log text, and slurmctld's submissions before it."""
    on_slurm = copy_workflow(tmp_path_factory.mktemp("slurm"))
    shutil.copy(CLUSTER / "config.yaml", on_slurm / "cluster.yaml")
    before = submitted_ids(cluster)
    out = slurm_run(on_slurm).stdout + "".join(p.read_text() for p in (on_slurm / ".snakemake" / "log").glob("*.log"))
    return on_slurm, out, before


def test_pipeline_through_slurm_matches_a_local_run(cluster, slurm_pipeline, tmp_path):
    on_slurm, out, before = slurm_pipeline
    local = copy_workflow(tmp_path / "local")
    shutil.copy(CLUSTER / "config.yaml", local / "cluster.yaml")
    jobids = set(re.findall(r"has been submitted with SLURM jobid (\d+)", out))
    assert jobids and jobids <= submitted_ids(cluster) - before  # SLURM's own record of every submission
    local_rules = {"all", "set_definition", "variant_manifest", "results_page"}  # `localrules` in the Snakefile: small jobs
    rules = set(planned_jobs(local, "--configfile", "cluster.yaml")) - local_rules
    # each submission line names its job's log folder: slurm_logs/rule_<rule>/ or slurm_logs/group_<group>_<rule>/
    submitted_rules = {a or b for a, b in re.findall(r"slurm_logs/(?:rule_(\w+)|group_\w+?_shards_(\w+))/", out)}
    assert rules <= submitted_rules, f"rules that did not go through sbatch: {rules - submitted_rules}"
    for done in (on_slurm / "results" / "train").glob("*/*/seed*/done.json"):
        summary = json.loads(done.read_text())
        assert summary["slurm_job_id"] in jobids and summary["gpu_allocation"] == "0"  # --gpus=1 was honoured
    snakemake(local, "--configfile", "cluster.yaml")
    for part in ("sets", "variants", "segment/shards"):
        assert digest(on_slurm / "results" / part, skip=ultralytics_cache) == digest(local / "results" / part, skip=ultralytics_cache), part
    slurm_metrics = (on_slurm / "results" / "tables" / "metrics.csv").read_text()
    assert slurm_metrics == (local / "results" / "tables" / "metrics.csv").read_text()


def test_cancelled_training_is_retried_and_resumes_and_a_rerun_completes_only_what_is_missing(cluster, slurm_pipeline, tmp_path):
    workdir = copy_workflow(tmp_path / "w")
    config = (CLUSTER / "config.yaml").read_text().replace("iterations: 4", "iterations: 40").replace("checkpoint_every: 2", "checkpoint_every: 4")
    (workdir / "cluster.yaml").write_text(config)
    for stage in ("ingest", "splits", "drops", "segment", "variants", "sets", "tables"):  # the data stages, as SLURM made them
        shutil.copytree(slurm_pipeline[0] / "results" / stage, workdir / "results" / stage)
    plan = planned_jobs(workdir, "--configfile", "cluster.yaml", "--until", "export")
    assert not plan.keys() & {"ingest", "splits", "drops", "segment", "variants", "export"}, plan  # nothing to redo
    run = workdir / "results" / "train" / "frcnn_mobile" / "original" / "seed0"
    target = "results/train/frcnn_mobile/original/seed0/done.json"
    proc = subprocess.Popen([str(VENV_BIN / "snakemake"), "--cores", "2", "--directory", str(workdir), "--snakefile", str(workdir / "workflow" / "Snakefile"),
                             "--profile", "profiles/slurm", "--configfile", "cluster.yaml", *QUICK_STATUS, target], cwd=workdir, env=run_env(slurm=True),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 900
    while not (run / "last.pt").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before its first checkpoint"
        time.sleep(1)
    running = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
    assert len(running) == 1
    subprocess.run(["scancel", running[0]], check=True)  # killed mid-training
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, out[-3000:]
    assert len(set(re.findall(r"has been submitted with SLURM jobid (\d+)", out))) == 2  # the profile's retry resubmitted it
    log = (workdir / "results" / "logs" / "train" / "frcnn_mobile" / "original" / "seed0.log").read_text()
    assert re.search(r"resuming from iteration [1-9]\d* of 40", log), log[-2000:]
    done = json.loads((workdir / target).read_text())
    assert done["iterations"] == 40 and [c["iteration"] for c in done["checkpoints"]] == list(range(4, 41, 4))
    # an interrupted workflow that lost one output: the rerun plans only what is missing
    shutil.rmtree(workdir / "results" / "sets" / "test_original")
    plan = snakemake(workdir, "-n", "--configfile", "cluster.yaml", "--quiet", "rules", "--until", "export").stdout
    assert re.search(r"^export\s+1$", plan, re.M) and not re.search(r"^(variants|segment|ingest)\s", plan, re.M)
