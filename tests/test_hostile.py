"""Hostile names and weight files: nothing runs code, nothing is written or deleted outside results/."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml

from bgshift import cli, config, export, io, sets
from bgshift.train import classifier, frcnn, yolo
from bgshift.variants import expand
from bgshift.weights import BadWeights, UnsafeWeights, load_state, load_yolo
from conftest import REPO, copy_workflow, run_stages, snakemake

BACKTICK = "x`touch MARKER`"


class _WritesMarker:
    """A pickle payload: unpickling it runs `touch <marker>`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_pt(path: Path, marker: Path) -> Path:
    torch.save({"model": _WritesMarker(marker), "train_args": {}, "date": "2026"}, path)
    return path


@pytest.mark.parametrize("where, edit", [
    ("sets.train", lambda c: c["sets"]["train"].update({BACKTICK: {"variants": ["original"]}})),
    ("train.models", lambda c: c["train"]["models"].update({BACKTICK: {"family": "yolo"}})),
    ("variants.catalog.bg_color.colours", lambda c: c["variants"]["catalog"]["bg_color"]["colours"].update({"../../victim": "red"})),
    ("sets.test.0", lambda c: c["sets"].update({"test": ["original;touch MARKER"]})),
    ("drops", lambda c: c["drops"].update({"$(touch MARKER)": {"kind": "easy"}})),
    ("splits.test_groups.0", lambda c: c["splits"].update({"test_groups": ["../quarry"]})),
])
def test_unsafe_names_stop_snakemake_before_any_job(tmp_path, where, edit):
    workdir = copy_workflow(tmp_path / "wf")
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    edit(cfg)
    (workdir / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(workdir, "--configfile", "bad.yaml", "-n", check=False)
    assert proc.returncode != 0
    assert re.search(rf"{re.escape(where)}: .* is not a safe name", proc.stdout + proc.stderr), proc.stderr[-2000:]
    assert not (workdir / "MARKER").exists() and not (workdir / "results").exists()


def test_a_scene_file_name_that_is_not_a_safe_name_is_refused(tmp_path):
    (tmp_path / "dusk`touch MARKER`.jpg").write_bytes(b"not read")
    settings = config.validate({"dataset": {"kind": "synthetic"},
                                "variants": {"scenes_dir": str(tmp_path), "catalog": {"bg_scene": {}}}})["variants"]
    with pytest.raises(config.ConfigError, match=r"scene file .*dusk`touch MARKER`\.jpg: 'dusk`touch MARKER`' is not a safe name"):
        expand(settings)


def test_every_rule_quotes_what_it_puts_into_a_shell_command():
    """Structural: a `{...}` in a rule's shell command is either quoted (`:q`) or the thread count."""
    unquoted = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for command in re.findall(r'shell:\s*\n((?:\s*".*"\n?)+)', smk.read_text()):
            unquoted += [f"{smk.name}: {{{f}}}" for f in re.findall(r"\{([^{}]+)\}", command)
                         if not f.endswith(":q") and f != "threads"]
    assert not unquoted, unquoted


def test_writers_refuse_paths_outside_the_results_folder(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    results = tmp_path / "results"
    monkeypatch.setenv(io.RESULTS_ENV, str(results))
    with pytest.raises(io.OutsideResults, match="outside the results folder"):
        io.write_json(results / "sets" / ".." / ".." / "victim" / "x.json", {})
    with pytest.raises(io.OutsideResults):
        with io.atomic_dir(results / "sets" / ".." / ".." / "victim"):
            pass
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(io.OutsideResults):
        io.write_text(results / ".." / "link" / "y.txt", "x")
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"] and (victim / "keep.txt").read_text() == "precious"
    io.write_json(results / "ok" / "x.json", {"inside": True})  # inside is fine
    assert (results / "ok" / "x.json").is_file()


def test_a_set_export_never_deletes_a_folder_outside_results(tmp_path, monkeypatch):
    cfg = config.validate({"seed": 0, "dataset": {"kind": "synthetic", "synthetic": {"num_images": 12}},  # every split holds an image
                           "segment": {"method": "gt"}, "variants": {"catalog": {"original": {}}},
                           "sets": {"train": {"original": {"variants": ["original"]}}, "test": []}})
    root = tmp_path / "results"
    run_stages(cfg, root)
    victim = tmp_path / "original"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    monkeypatch.setenv(io.RESULTS_ENV, str(root))
    with pytest.raises(io.OutsideResults):
        export.export(sets.definitions(cfg)["original"], 500, False, root / "variants" / "manifest.json", root / "splits" / "splits.parquet",
                    root / "drops" / "drops.parquet", root / "ingest" / "categories.parquet", root / ".." / "original")
    assert (victim / "thesis.tex").read_text() == "years of work"


def test_malicious_yolo_weights_are_refused_everywhere_they_could_be_loaded(tmp_path):
    marker = tmp_path / "MARKER"
    evil = malicious_pt(tmp_path / "evil.pt", marker)
    settings = config.validate({"dataset": {"kind": "synthetic"}, "train": {"models": {"y": {"family": "yolo", "model": str(evil)}}}})
    settings = settings["train"]["models"]["y"]
    with pytest.raises(UnsafeWeights, match=r"evil\.pt: refused"):  # the model named in the config
        yolo.train(settings, tmp_path / "set", tmp_path / "run", 0, False, [])
    last = tmp_path / "resume" / "yolo" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    malicious_pt(last, marker)
    with pytest.raises(UnsafeWeights, match=r"last\.pt: refused"):  # resume
        yolo.train({**settings, "model": "yolov8n.yaml"}, tmp_path / "set", tmp_path / "resume", 0, False, [])
    with pytest.raises(UnsafeWeights, match=r"evil\.pt: refused"):  # detection with best.pt
        yolo.load_predictor({"imgsz": 64}, evil, [], cuda=False)
    assert not marker.exists(), "unpickling the weights ran code"


def test_malicious_torch_checkpoints_are_refused(tmp_path):
    marker = tmp_path / "MARKER"
    evil = malicious_pt(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeWeights, match="weights_only=True"):
        load_state(evil)
    frcnn_settings = config.validate({"dataset": {"kind": "synthetic"}, "train": {"models": {"f": {"family": "frcnn", "weights": str(evil)}}}})
    with pytest.raises(UnsafeWeights):
        frcnn.build_model(frcnn_settings["train"]["models"]["f"], 2)
    with pytest.raises(UnsafeWeights):
        frcnn.FAMILY.load_predictor(frcnn_settings["train"]["models"]["f"], evil, [{"index": 0, "category_id": 1}], cuda=False)
    classifier_settings = config.validate({"dataset": {"kind": "synthetic"}, "train": {"models": {"c": {"family": "classifier", "weights": str(evil)}}}})
    with pytest.raises(UnsafeWeights):
        classifier.build_model(classifier_settings["train"]["models"]["c"], 2)
    with pytest.raises(UnsafeWeights):
        classifier.load_predictor(classifier_settings["train"]["models"]["c"], evil, [{"index": 0, "category_id": 1}], cuda=False)
    assert not marker.exists()


def test_weights_files_that_do_not_fit_stop_with_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    """Wrong shapes, a bare tensor, random bytes, a truncated file and a zip with a '../' member
    used to be raw tracebacks (a 49 KB size-mismatch log) that did not name the file."""
    import zipfile as zf

    settings = lambda path: config.validate({"dataset": {"kind": "synthetic"}, "train": {"models": {  # noqa: E731
        "c": {"family": "classifier", "arch": "resnet18", "weights": str(path)}}}})["train"]["models"]["c"]
    other = tmp_path / "resnet34.pt"
    torch.save(torchvision.models.resnet34(num_classes=2).state_dict(), other)
    with pytest.raises(BadWeights, match=r"resnet34\.pt: does not fit the resnet18 with 2 classes: \d+ not in the model "
                                         r"\(first: layer1\.2\.bn1\.bias\)"):
        classifier.build_model(settings(other), 2)
    wrong_classes = tmp_path / "five.pt"
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), wrong_classes)
    with pytest.raises(BadWeights, match=r"five\.pt: does not fit .* 2 of another shape \(first: fc\.bias: file \(5,\), model \(2,\)\)"):
        classifier.build_model(settings(wrong_classes), 2)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "truncated.pt").write_bytes(wrong_classes.read_bytes()[:5000])
    with zf.ZipFile(tmp_path / "escape.pt", "w") as archive:
        archive.writestr("../outside/data.pkl", b"not a pickle")
    for name, message in [("tensor", "holds a Tensor, not a state dict"), ("random", "not a weights file torch can read"),
                          ("truncated", "not a weights file torch can read"), ("escape", "not a weights file torch can read")]:
        with pytest.raises(BadWeights, match=rf"{name}\.pt: {message}"):
            load_state(tmp_path / f"{name}.pt")
    assert not (tmp_path.parent / "outside").exists()
    monkeypatch.setenv(io.RESULTS_ENV, str(tmp_path))
    assert cli.main(["backbone", "--checkpoint", str(tmp_path / "random.pt"), "--out", str(tmp_path / "body.pt")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "random.pt: not a weights file torch can read" in error


def test_safe_loading_still_loads_real_ultralytics_checkpoints(tmp_path):
    from ultralytics import YOLO

    YOLO("yolov8n.yaml").save(tmp_path / "scratch.pt")
    model = load_yolo(tmp_path / "scratch.pt")
    assert type(model.model).__name__ == "DetectionModel" and os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] == "1"


def test_editing_the_dataset_reruns_ingest_and_the_shards_follow(tmp_path):
    """The annotation file is an input of ingest: a larger file after a finished run is noticed;
    so is an image file repaired (replaced by another of other size) or added."""
    import json
    import shutil

    from conftest import COCO128

    if not COCO128.is_dir():
        pytest.skip(f"real dataset {COCO128} is absent")
    full = json.loads((COCO128 / "annotations" / "instances_train2017.json").read_text())
    small = {**full, "images": full["images"][:20]}
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps(small))
    images = tmp_path / "images"
    images.mkdir()
    for image in full["images"][:40]:
        shutil.copy(COCO128 / "train2017" / image["file_name"], images / image["file_name"])
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "coco.yaml").write_text(yaml.safe_dump({"dataset": {"kind": "coco", "images": str(images),
                                                                   "annotations": str(annotations)}, "shard_size": 16}))
    snakemake(workdir, "ingest", "--configfile", "coco.yaml")
    assert "Nothing to be done" in snakemake(workdir, "ingest", "-n", "--configfile", "coco.yaml").stdout
    annotations.write_text(json.dumps({**full, "images": full["images"][:40]}))
    plan = snakemake(workdir, "segment_summary", "-n", "--quiet", "rules", "--configfile", "coco.yaml").stdout
    assert re.search(r"^ingest\s+1$", plan, re.M) and re.search(r"^segment\s+3$", plan, re.M), plan  # 40 images: 3 shards of 16
    snakemake(workdir, "ingest", "--configfile", "coco.yaml")
    summary = json.loads((workdir / "results" / "ingest" / "summary.json").read_text())
    assert summary["images"]["input"] == 40
    assert "Nothing to be done" in snakemake(workdir, "ingest", "-n", "--configfile", "coco.yaml").stdout
    repaired = images / full["images"][3]["file_name"]
    repaired.write_bytes(repaired.read_bytes() + b"\0" * 10)  # other bytes, other size: a new copy of the image
    assert re.search(r"^ingest\s+1$", planned := snakemake(workdir, "ingest", "-n", "--quiet", "rules", "--configfile",
                                                           "coco.yaml").stdout, re.M), planned


def test_a_stale_lock_is_removed_but_a_live_runs_lock_is_kept(tmp_path):
    """`make run` after a crash: bgshift unlock-stale clears the lock of a killed run only."""
    import subprocess
    import sys

    from bgshift import locks

    workdir = copy_workflow(tmp_path / "wf")
    (workdir / ".snakemake" / "locks").mkdir(parents=True)
    (workdir / ".snakemake" / "locks" / "0.output.lock").write_text(str(workdir / "results" / "x"))
    fake = tmp_path / "bin" / "snakemake"  # a process that looks like a Snakemake working in workdir
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    fake.chmod(0o755)
    live = subprocess.Popen([str(fake)], cwd=workdir)
    try:
        with pytest.raises(locks.LiveRun, match=rf"running Snakemake \(pid {live.pid}\)"):
            locks.unlock_if_stale(workdir)
    finally:
        live.kill()
        live.wait()
    assert "removed the stale lock" in locks.unlock_if_stale(workdir)
    lock_dir = workdir / ".snakemake" / "locks"
    assert not lock_dir.is_dir() or not any(lock_dir.iterdir())
    assert locks.unlock_if_stale(workdir) == "no lock"


def test_outputs_follow_the_umask(tmp_path):
    import stat
    import subprocess

    from conftest import VENV_BIN, run_env

    script = ("from bgshift import io; io.write_json('results/a.json', {}); "
              "import contextlib\nwith io.atomic_dir('results/d') as d: (d / 'x').write_text('x')")
    for umask, file_mode, dir_mode in ((0o022, 0o644, 0o755), (0o077, 0o600, 0o700)):
        workdir = tmp_path / f"u{umask:o}"
        workdir.mkdir()
        subprocess.run(["sh", "-c", f"umask {umask:o} && exec {VENV_BIN / 'python'} -c \"$0\"", script], cwd=workdir, env=run_env(), check=True)
        assert stat.S_IMODE((workdir / "results" / "a.json").stat().st_mode) == file_mode
        assert stat.S_IMODE((workdir / "results" / "d").stat().st_mode) == dir_mode


def test_an_empty_dataset_stops_before_any_job(tmp_path):
    annotations = tmp_path / "empty.json"
    annotations.write_text('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "sheep"}]}')
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "empty.yaml").write_text(yaml.safe_dump({"dataset": {"kind": "coco", "images": str(tmp_path), "annotations": str(annotations)}}))
    proc = snakemake(workdir, "-n", "--configfile", "empty.yaml", check=False)
    assert proc.returncode != 0 and "the coco input lists no image" in proc.stdout + proc.stderr
