"""The study grid at paper scale plans the jobs it should: one per shard where a stage is
sharded, one per set, model, seed where it is not, and nothing listed per variant x shard."""
from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

from conftest import REPO, run_env

sys.path.insert(0, str(REPO / "benchmarks"))
import planning  # noqa: E402


@pytest.fixture(autouse=True)
def _no_slurm_probe(monkeypatch):
    for key, value in run_env().items():
        monkeypatch.setenv(key, value)


def test_the_paper_scale_grid_plans_the_expected_jobs_per_rule(tmp_path):
    images = 11_500  # PASCAL VOC 07+12's size
    _, _, jobs = planning.plan_grid(tmp_path, images)
    shards = math.ceil(images / 64)
    sets, runs = 18 + 18, 18 * 3 * 3
    assert jobs == {
        "ingest": 1, "splits": 1, "drops": 1,
        "segment": shards, "segment_sheet": 8, "segment_summary": 1,  # sheets: a sample of shards for review
        "variants": shards, "variant_manifest": 1, "variant_sheet": 1,
        "set_definition": sets, "export": sets, "accounting": 1,
        "train": runs, "detect": runs, "score": runs,
        "report_tables": 1, "plots": 1, "summary": 1, "all": 1,
    }


def test_no_job_but_the_manifest_lists_every_shard(tmp_path):
    """Jobs that read every shard's variants (export, accounting) name the one manifest; a
    variants job names its own shard's masks, never every shard's (planning stays linear)."""
    config = planning.grid_config(tmp_path, planning.fake_coco(tmp_path / "coco.json", 640))  # 10 shards
    proc = subprocess.run(["snakemake", "-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"), "--directory", str(REPO),
                           "--configfile", str(config)], cwd=REPO, env=run_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    inputs = {}  # rule -> the input list of each of its jobs
    for block in re.split(r"^(?:local)?rule ", proc.stdout, flags=re.M)[1:]:
        rule = block.split(":", 1)[0]
        listed = re.search(r"^    input: (.*)$", block, re.M)
        inputs.setdefault(rule, []).append(listed[1].split(", ") if listed else [])
    assert len(inputs["export"]) == 36 and len(inputs["variants"]) == 10
    for rule in ("export", "accounting"):
        for listed in inputs[rule]:
            assert not any("/variants/shards/" in f for f in listed) and any(f.endswith("variants/manifest.json") for f in listed)
    for listed in inputs["variants"]:
        assert sum("/segment/shards/" in f for f in listed) == 1
    assert [len(listed) for listed in inputs["variant_manifest"]] == [10]  # one record per shard
