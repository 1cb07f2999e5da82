"""Train: one run per (model, training set, seed), on the GPU a lock gives it, or the CPU.

A model family is one module of this package (yolo, frcnn, retinanet, classifier) whose FAMILY
implements interface.ModelFamily, and one record in families.py; the loop the torchvision
families share is engine.py, their detection data and predictor detection.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np

from ..run_settings import learnt_settings
from ..io import inside_results, read_categories, write_json
from .. import devices
from .families import family


def run(config: dict, model_name: str, set_dir: str | Path, seed: int, categories: str | Path, run_dir: str | Path,
        done: str | Path, device: str = "auto") -> dict:
    """`device`: auto (a free GPU if any, by lock, else the CPU) or cpu; where to run is no part of the job's config."""
    import torch

    settings = config["train"]["models"][model_name]
    set_dir, run_dir = Path(set_dir), inside_results(run_dir)
    start_afresh_if_inputs_changed(run_dir, inputs_digest(settings, set_dir, seed))
    allocation = devices.allocate() if device == "auto" else devices.Allocation(None)
    try:
        use_cuda = allocation.device is not None and torch.cuda.is_available()
        devices.use_declared_threads()
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        summary = family(settings["family"]).train(settings, set_dir, run_dir, seed, use_cuda, read_categories(categories)[0])
    finally:
        allocation.release()
    summary = {**summary, "model": model_name, "set": set_dir.name, "seed": seed,
               "device": f"cuda (GPU {allocation.device})" if use_cuda else "cpu",
               "gpu_allocation": allocation.device,  # what the lock or the scheduler gave this job
               "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
    write_json(done, summary)
    return summary




def ground_truth(task: str, set_dir: str | Path) -> Path:
    """What a test set's predictions are scored against: its COCO json, or its crops' Parquet parts."""
    return Path(set_dir) / ("coco/test.json" if task == "detection" else "parquet/test")


def inputs_digest(settings: dict, set_dir: Path, seed: int) -> str:
    """sha256 of what a run learns from: the model's settings (run-only ones aside), the seed and
    every byte of the set's Parquet parts (images, labels, splits)."""
    digest = hashlib.sha256(json.dumps({"settings": learnt_settings(settings), "seed": seed}, sort_keys=True).encode())
    for part in sorted((set_dir / "parquet").rglob("*.parquet")):
        digest.update(part.relative_to(set_dir).as_posix().encode())
        with open(part, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def start_afresh_if_inputs_changed(run_dir: Path, digest: str) -> None:
    """Resume only a run of the same inputs. Snakemake reruns a training job both after a kill
    (resume from last.pt) and after its set or settings changed; the checkpoints of the latter
    were learnt from other data, so they are removed rather than resumed."""
    record = run_dir / "inputs.json"
    if run_dir.is_dir() and any(run_dir.iterdir()):
        recorded = json.loads(record.read_text())["sha256"] if record.is_file() else None
        if recorded == digest:
            return
        print(f"{run_dir}: the training set or the model's settings changed since its checkpoints were written; "
              "starting afresh", flush=True)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(record, {"sha256": digest})
