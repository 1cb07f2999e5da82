"""ultralytics YOLO trained on a set's YOLO export.

The model is any ultralytics model .yaml (trained from scratch, no download) or a .pt
file that must already be on disk (e.g. resources/weights/yolov8n.pt). A checkpoint is
kept every `save_period` epochs (weights/epochN.pt), best.pt is the best by validation
fitness, `patience` stops early; a restarted job resumes from weights/last.pt.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..metrics import load_coco
from ..weights import forbid_unpickling, load_yolo, weights_file
from .interface import Explainable, FamilyCode

TASK = "detection"


def train(settings: dict, set_dir: Path, run_dir: Path, seed: int, cuda: bool, categories: list[dict]) -> dict:
    """ultralytics trains on the set's YOLO export, whose class ids are the category indices."""
    device = "0" if cuda else "cpu"
    forbid_unpickling()  # resume and best-by-val loads inside ultralytics are weights_only too
    from ultralytics import YOLO

    model_spec = settings["model"]
    if model_spec.endswith(".pt"):  # ultralytics .pt files cannot be downloaded here
        weights_file(model_spec, None, "YOLO", ", or use a model .yaml to train from scratch")
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


def checkpoints(done: dict, run_dir: Path) -> list[dict]:
    """best first, then every kept epoch checkpoint."""
    best = {"label": "best", "step": None, "path": run_dir / done["best"]["name"]}
    return [best] + [{"label": Path(c["name"]).stem, "step": c["epoch"], "path": run_dir / c["name"]} for c in done["checkpoints"]]


def load_predictor(settings: dict, checkpoint: Path, categories: list[dict], cuda: bool,
                   label_map: dict[int, int] | None = None) -> Callable[[Path], list[dict]]:
    """A checkpoint (loaded once, safely) as a function of the COCO split to run on; `label_map`:
    an evaluate-only model's class -> category id (its other classes' boxes are left out)."""
    model = load_yolo(checkpoint)
    category_of = label_map if label_map is not None else {c["index"]: c["category_id"] for c in categories}
    return lambda coco_json: predict(model, settings["imgsz"], Path(coco_json), category_of, "0" if cuda else "cpu")


def own_classes(settings: dict) -> tuple[Path, dict[int, str]]:
    """An evaluate-only YOLO's .pt and the classes it was trained on (its `names`)."""
    path = weights_file(settings["model"], None, "YOLO")
    return path, {int(label): str(name) for label, name in load_yolo(path).names.items()}


def predict(model, imgsz: int, coco_json: Path, category_of: dict[int, int], device: str, batch: int = 16) -> list[dict]:
    """ultralytics predict at validation settings (conf 0.001, NMS IoU 0.7, up to 300 per image),
    on the COCO export's image files, so every family is scored on the same images the same way."""
    coco = load_coco(coco_json)
    images = coco.loadImgs(sorted(coco.getImgIds()))
    results = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        predictions = model.predict([str(coco_json.parent / im["file_name"]) for im in chunk], imgsz=imgsz,
                                    conf=0.001, iou=0.7, max_det=300, device=device, verbose=False)
        for im, pred in zip(chunk, predictions):
            boxes = pred.boxes
            for (x0, y0, x1, y1), cls, score in zip(boxes.xyxy.tolist(), boxes.cls.tolist(), boxes.conf.tolist()):
                if int(cls) not in category_of:
                    continue
                results.append({"image_id": im["id"], "category_id": category_of[int(cls)],
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    return results


def explainable(settings: dict, checkpoint: Path, categories: list[dict], cuda: bool, label_map: dict[int, int] | None = None):
    """EigenCAM over the feature maps the Detect head reads (its inputs, e.g. P3-P5), the image
    resized to a multiple of the model's largest stride, as ultralytics' own input is."""
    import cv2
    import torch

    network = load_yolo(checkpoint).model.float().eval().to(torch.device("cuda" if cuda else "cpu"))
    stride = int(network.stride.max())

    def prepare(rgb):
        height, width = (-(-side // stride) * stride for side in rgb.shape[:2])
        resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(resized).permute(2, 0, 1).float().div(255)[None]

    return Explainable(network, [network.model[i] for i in network.model[-1].f], prepare, "eigencam")


FAMILY = FamilyCode(TASK, train, load_predictor, checkpoints, own_classes, explainable)
