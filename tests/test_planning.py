"""The study grid at paper scale plans the jobs it should: one per shard where a stage is
sharded, one per set, model, seed where it is not, and nothing listed per variant x shard."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
        "ingest": 1, "splits": 1, "drops": 1, "drop_sheet": 1,
        "segment": shards, "segment_sheet": 8, "segment_summary": 1,  # sheets: a sample of shards for review
        "variants": shards, "variant_manifest": 1, "variant_sheet": 1,
        "set_definition": sets, "export": sets, "accounting": 1,
        "train": runs, "detect": runs, "saliency": runs, "score": runs,
        "report_tables": 1, "plots": 1, "results_page": 1, "summary": 1, "all": 1,
    }


def test_no_job_but_the_manifest_lists_every_shard(tmp_path):
    """Jobs that read every shard's variants (export, accounting) name the one manifest; a
    variants job names its own shard's masks, never every shard's (planning stays linear)."""
    config = planning.grid_config(tmp_path, planning.fake_coco(tmp_path / "coco.json", 640))  # 10 shards
    proc = subprocess.run(["snakemake", "-n", "--cores", "1", "--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory", str(REPO),
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


SCALE = re.compile(r"^# Planned in CI at its paper scale \(tests/test_planning.py\): ([\d,]+) (COCO|VOC) images", re.M)


def fake_voc(root: Path, n_images: int) -> Path:
    """A VOC root of n XML files (one object each; no image files: a dry run reads none)."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for i in range(1, n_images + 1):
        (root / "Annotations" / f"{i:06d}.xml").write_text(
            f"<annotation><filename>{i:06d}.jpg</filename><size><width>500</width><height>375</height></size>"
            f"<object><name>dog</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>90</xmax><ymax>80</ymax></bndbox></object></annotation>")
    return root


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Fake COCO jsons by size, made once (two examples plan at COCO train2017's 118k)."""
    made: dict[int, Path] = {}

    def coco_of(images: int) -> Path:
        if images not in made:
            made[images] = planning.fake_coco(tmp_path_factory.mktemp("coco") / "instances.json", images)
        return made[images]
    return coco_of


@pytest.mark.parametrize("example", sorted(p.name for p in (REPO / "config" / "examples").glob("*.yaml")))
def test_each_example_plans_at_the_scale_its_header_states(example, tmp_path, stand_ins):
    """Every example config, its dataset replaced by a stand-in of the size its header states
    (no image files: a dry run reads none), plans a shard job per 64 images and a training job
    per trained model x set x seed, an adopt job per evaluate-only model; the plan itself checks
    every declared claim's cells."""
    from bgshift import config as bgconfig
    from bgshift.sets import set_names

    text = (REPO / "config" / "examples" / example).read_text()
    cfg = yaml.safe_load(text)
    scale = SCALE.search(text)
    if cfg["dataset"]["kind"] == "synthetic":
        images = cfg["dataset"]["synthetic"]["num_images"]
    else:
        assert scale, f"{example}: its header states no scale"
        images, kind = int(scale[1].replace(",", "")), scale[2].lower()
        if kind == "coco":
            (tmp_path / "images").mkdir()
            cfg["dataset"] = {"kind": "coco", "images": str(tmp_path / "images"), "annotations": str(stand_ins(images))}
        else:
            cfg["dataset"] = {"kind": "voc", "root": str(fake_voc(tmp_path / "voc", images))}
    cfg["results"] = f"results/planning/{Path(example).stem}"
    (tmp_path / "example.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    _, _, jobs = planning.dry_run("--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory", str(REPO),
                                  "--configfile", str(tmp_path / "example.yaml"), cwd=REPO)
    full = bgconfig.validate(cfg)
    shards = math.ceil(images / full["shard_size"])
    fixed = [m for m, settings in full["train"]["models"].items() if settings.get("evaluate_only")]
    train_sets = full["train"]["sets"] or list(full["sets"]["train"])
    runs = sum(len(s.get("sets") or train_sets) for m, s in full["train"]["models"].items() if m not in fixed) * len(full["train"]["seeds"])
    assert (jobs["segment"], jobs["variants"], jobs["export"]) == (shards, shards, len(set_names(full))), jobs
    assert (jobs.get("train", 0), jobs.get("adopt", 0), jobs.get("detect", 0)) == (runs, len(fixed), runs + len(fixed)), jobs
