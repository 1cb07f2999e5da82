"""The Snakemake workflow itself: lint, dry run, config errors before jobs, a real run."""
from __future__ import annotations

import json

import pytest

from conftest import REPO, copy_workflow, snakemake


def test_lint_is_clean():
    proc = snakemake(REPO, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_dry_run_lists_the_stages(tmp_path):
    copy_workflow(tmp_path)
    out = snakemake(tmp_path, "-n").stdout
    assert "ingest" in out


def test_bad_config_stops_before_any_job(tmp_path):
    copy_workflow(tmp_path)
    (tmp_path / "bad.yaml").write_text("dataset: {kind: synthetic}\nshard_sise: 4\n")
    proc = snakemake(tmp_path, "ingest", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "unknown key(s) ['shard_sise']" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_ingest_rule_runs_on_the_demo(tmp_path):
    copy_workflow(tmp_path)
    snakemake(tmp_path, "ingest")
    summary = json.loads((tmp_path / "results" / "ingest" / "summary.json").read_text())
    assert summary["images"]["ingested"] == summary["images"]["input"] == 48
    assert summary["annotations"]["unlabelled"] > 0
