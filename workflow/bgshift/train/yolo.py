"""ultralytics YOLO trained on a set's YOLO export.

The model is any ultralytics model .yaml (trained from scratch, no download) or a .pt
file that must already be on disk (e.g. resources/weights/yolov8n.pt). A checkpoint is
kept every `save_period` epochs (weights/epochN.pt), best.pt is the best by validation
fitness, `patience` stops early; a restarted job resumes from weights/last.pt.
"""
from __future__ import annotations

from pathlib import Path

from ..weights import WeightsMissing, forbid_unpickling, load_yolo


def train(settings: dict, set_dir: Path, run_dir: Path, seed: int, device: str) -> dict:
    forbid_unpickling()  # resume and best-by-val loads inside ultralytics are weights_only too
    from ultralytics import YOLO

    model_spec = settings["model"]
    if model_spec.endswith(".pt") and not Path(model_spec).is_file():
        raise WeightsMissing(f"YOLO weights {model_spec} not found offline: place {Path(model_spec).name} at {model_spec} "
                             f"(ultralytics .pt files cannot be downloaded here), or use a model .yaml to train from scratch")
    weights = run_dir / "yolo" / "weights"
    last = weights / "last.pt"
    if last.is_file() and not (run_dir / "yolo" / "finished").exists():
        print(f"resuming from {last}", flush=True)
        try:
            load_yolo(last).train(resume=True, device=device, workers=0, plots=False)
        except AssertionError as exc:  # ultralytics: "... is finished, nothing to resume"
            if "nothing to resume" not in str(exc):
                raise
    elif not last.is_file():
        (load_yolo(model_spec) if model_spec.endswith(".pt") else YOLO(model_spec)).train(
            data=str(set_dir / "yolo" / "data.yaml"), epochs=settings["epochs"], imgsz=settings["imgsz"], batch=settings["batch"],
            optimizer=settings["optimizer"], lr0=settings["lr0"], patience=settings["patience"], save_period=settings["save_period"],
            seed=seed, deterministic=True, device=device, workers=0, plots=False, amp=settings["amp"], verbose=False,
            project=str(run_dir.resolve()), name="yolo", exist_ok=True, **settings["augment"],
        )
    (run_dir / "yolo" / "finished").touch()
    epochs = sorted(weights.glob("epoch*.pt"), key=lambda p: int(p.stem[5:]))
    checkpoints = [{"name": str(p.relative_to(run_dir)), "epoch": int(p.stem[5:]) + 1} for p in epochs]
    return {"family": "yolo", "checkpoints": checkpoints, "best": {"name": "yolo/weights/best.pt"},
            "results_csv": "yolo/results.csv"}
