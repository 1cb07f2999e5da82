"""An edit of the config reruns exactly the jobs whose output it changes, and nothing else.

Each job's params hold exactly the configuration its output depends on (`job_config` in
workflow/rules/common.smk), so Snakemake's own params/input triggers decide. The table
below is the demo's: 2 models x 1 training set x 2 seeds = 4 runs, 6 shards.
"""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from conftest import REPO, digest, planned_jobs, snakemake

AFTER_TRAINING = {"report_tables": 1, "plots": 1, "findings": 1, "results_page": 1, "summary": 1, "all": 1}


def _set(path: str, value):
    """An edit: config[key1][key2]... = value."""
    def edit(config: dict) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            config = config.setdefault(key, {})
        config[leaf] = value
    return edit


def _add_test_set(config: dict) -> None:
    config["sets"]["test"].append("only_fg")


def _add_model(config: dict) -> None:
    config["train"]["models"]["yolo_n_wide"] = {**config["train"]["models"]["yolo_n"], "imgsz": 320}


# edit -> the jobs a dry run must list (rule -> count); {} is "Nothing to be done"
EDITS = {
    "score threshold": (_set("evaluate.score_threshold", 0.3), {"score": 4, **AFTER_TRAINING}),
    "new seed": (_set("train.seeds", [0, 1, 2]), {"train": 2, "detect": 2, "saliency": 2, "score": 2, **AFTER_TRAINING}),
    "new test set": (_add_test_set, {"set_definition": 1, "export": 1, "accounting": 1, "detect": 4, "saliency": 4, "score": 4, **AFTER_TRAINING}),
    "new model": (_add_model, {"train": 2, "detect": 2, "saliency": 2, "score": 2, **AFTER_TRAINING}),
    "new training set": (_set("train.sets", ["original", "masked"]), {"train": 4, "detect": 4, "saliency": 4, "score": 4, **AFTER_TRAINING}),
    "one model's budget": (_set("train.models.frcnn_mobile.iterations", 400), {"train": 2, "detect": 2, "saliency": 2, "score": 2, **AFTER_TRAINING}),
    # the maps are drawn again (their sample changes) and scored into the rows; nothing is retrained or re-detected
    "saliency images": (_set("evaluate.saliency.images", 2), {"saliency": 4, "score": 4, **AFTER_TRAINING}),
    "threads": (_set("train.threads", 2), {}),
    # run-only settings are resources, not params: where a job runs and how it decodes
    "training data workers": (_set("train.models.frcnn_mobile.workers", 2), {}),
    "segmentation decode batch and device": (lambda c: c["segment"]["deeplabv3"].update(batch_size=4, device="cpu"), {}),
    "a claim's margin": (_set("findings.claims.blur_within_margin.margin", 0.1), {"findings": 1, "results_page": 1, "all": 1}),
    "findings' replicates": (_set("findings.replicates", 500), {"findings": 1, "results_page": 1, "all": 1}),
    "variant memory bounds": (lambda c: c["variants"].update(group_mb=8, donor_cache=4), {}),
    "variant contact-sheet size": (_set("variants.contact_sheet", {"size": 96}), {"variant_sheet": 1, "results_page": 1, "all": 1}),
    "segment contact-sheet size": (_set("segment.contact_sheet", {"size": 96}), {"segment_sheet": 6, "all": 1}),
    "fewer shards with a contact sheet": (_set("segment.contact_sheet", {"shards": 2}), {}),
    # one job per shard writes every variant, so the variant stage reruns; only what uses the variant
    # follows, through the set's definition file
    "unused variant's parameter": (_set("variants.catalog.unl_blur", {"sigma": 12}),
                                   {"variants": 6, "variant_manifest": 1, "variant_sheet": 1, "accounting": 1, "summary": 1,
                                    "results_page": 1, "all": 1}),
    "test variant's parameter": (_set("variants.catalog.bg_noise", {"feather": 2}),
                                 {"variants": 6, "variant_manifest": 1, "variant_sheet": 1, "set_definition": 1, "export": 1, "accounting": 1,
                                  "detect": 4, "saliency": 4, "score": 4,
                                  **AFTER_TRAINING}),
}


def demo_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def planned_for(workdir, config: dict) -> dict[str, int]:
    """Rule -> job count of a dry run of `config` on the finished demo in `workdir`."""
    (workdir / "edited.yaml").write_text(yaml.safe_dump(config, sort_keys=False))  # order names variants and sets
    return planned_jobs(workdir, "--configfile", "edited.yaml")


def test_the_unedited_demo_plans_nothing(demo_run):
    assert planned_for(demo_run[0], demo_config()) == {}


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edit_reruns_exactly_the_jobs_it_changes(demo_run, edit):
    change, expected = EDITS[edit]
    config = demo_config()
    change(config)
    assert planned_for(demo_run[0], config) == expected


@pytest.mark.parametrize("edit", [_set("segment.qc", {"min_fg_pixels": 100}), _set("segment.grabcut", {"iterations": 3})])
def test_a_qc_or_grabcut_edit_resegments_without_retraining_the_segmentation_model(demo_run, edit):
    """The fine-tuned DeepLab learns from the ground-truth masks, not from QC or GrabCut settings:
    an edit of those reruns every shard (and what follows), never segment_model."""
    config = demo_config()
    edit(config)
    planned = planned_for(demo_run[0], config)
    assert planned["segment"] == 6 and "segment_model" not in planned, planned


def test_a_test_variant_edit_re_exports_that_set_alone_in_one_run(demo_run, tmp_path):
    """The real run behind the `ancient` variant inputs: edit the variant of one test set; one
    `snakemake` rewrites that variant and that set, leaves every other set's bytes alone, and
    leaves nothing to do."""
    workdir = tmp_path / "demo"
    shutil.copytree(demo_run[0], workdir, symlinks=True)  # copy2 keeps mtimes: Snakemake sees a finished run
    results = workdir / "results"
    before = {name: digest(results / "sets" / name) for name in ("test_bg_noise", "test_original", "original")}
    before_black = digest(results / "variants" / "shards", "unl_black.parquet")
    edited = demo_config()
    edited["variants"]["catalog"]["bg_noise"] = {"feather": 2}
    (workdir / "edited.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    snakemake(workdir, "--configfile", "edited.yaml")
    assert digest(results / "sets" / "test_bg_noise") != before["test_bg_noise"]
    assert json.loads((results / "sets" / "test_bg_noise" / "summary.json").read_text())["made_of"]["variants"]["bg_noise"][
        "params"]["feather"] == 2
    assert all(digest(results / "sets" / name) == before[name] for name in ("test_original", "original"))
    assert digest(results / "variants" / "shards", "unl_black.parquet") == before_black  # rewritten, and deterministic: the same bytes
    assert planned_for(workdir, edited) == {}
