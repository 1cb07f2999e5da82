"""Train: one run per (model, training set, seed), on the GPU a lock gives it, or the CPU."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..io import inside_results, write_json
from . import gpus


def run(config: dict, model_name: str, set_dir: str | Path, seed: int, categories: str | Path, run_dir: str | Path,
        done: str | Path) -> dict:
    import torch

    settings = config["train"]["models"][model_name]
    set_dir, run_dir = Path(set_dir), inside_results(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    allocation = gpus.allocate() if config["train"]["device"] == "auto" else gpus.Allocation(None)
    try:
        use_cuda = allocation.device is not None and torch.cuda.is_available()
        torch.set_num_threads(max(1, int(os.environ.get("BGSHIFT_THREADS", os.cpu_count() or 1))))
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        if settings["family"] == "yolo":
            from . import yolo

            summary = yolo.train(settings, set_dir, run_dir, seed, "0" if use_cuda else "cpu")
        else:
            from . import frcnn

            cats = sorted(pq.read_table(categories).to_pylist(), key=lambda c: c["index"])
            summary = frcnn.train(settings, set_dir, run_dir, seed, torch.device("cuda" if use_cuda else "cpu"), cats)
    finally:
        allocation.release()
    summary = {**summary, "model": model_name, "set": set_dir.name, "seed": seed,
               "device": f"cuda (GPU {allocation.device})" if use_cuda else "cpu",
               "gpu_allocation": allocation.device,  # what the lock or the scheduler gave this job
               "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
    write_json(done, summary)
    return summary
