"""torchvision Faster R-CNN trained on a set's COCO export, with a real training loop.

SGD or AdamW, linear warm-up then step or cosine decay, mixed precision on GPU,
gradient clipping, horizontal flips. A checkpoint every `checkpoint_every` iterations is
kept as a file and scored on the val split (COCO AP): the best is kept as best.pt and
training stops early after `patience` checkpoints without improvement. `last.pt` holds
the full state (model, optimiser, schedule, scaler, random generator, iteration), so a
killed or requeued job resumes where it stopped. Data order and flips derive from (seed, iteration), so a
resumed run sees exactly the batches an uninterrupted one would have.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision.models.detection as tvd
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

from .. import evaluate
from ..io import write_json, write_torch
from ..weights import WeightsMissing, hub_checkpoint, load_state

ARCHS = {
    "fasterrcnn_resnet50_fpn": (tvd.fasterrcnn_resnet50_fpn, tvd.FasterRCNN_ResNet50_FPN_Weights.COCO_V1),
    "fasterrcnn_resnet50_fpn_v2": (tvd.fasterrcnn_resnet50_fpn_v2, tvd.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1),
    "fasterrcnn_mobilenet_v3_large_fpn": (tvd.fasterrcnn_mobilenet_v3_large_fpn, tvd.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1),
}


def build_model(settings: dict, num_classes: int) -> torch.nn.Module:
    """Faster R-CNN with `num_classes` object classes (+ background), weights per settings["weights"]."""
    builder, enum = ARCHS[settings["arch"]]
    sizes = {"min_size": settings["min_size"], "max_size": settings["max_size"], **settings["model_kwargs"]}
    weights = settings["weights"]
    if weights == "none":
        return builder(weights=None, weights_backbone=None, num_classes=num_classes + 1, **sizes)
    if weights == "torchvision":
        path = hub_checkpoint(enum.url)
        if not path.is_file():
            raise WeightsMissing(f"Faster R-CNN weights not found offline: place {path.name} (torchvision {enum}, from {enum.url}) "
                                 f"at {path}, or set the model's weights to a checkpoint path or 'none'")
        model = builder(weights=None, weights_backbone=None, num_classes=len(enum.meta["categories"]), **sizes)
        model.load_state_dict(load_state(path))
        in_features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes + 1)  # a new head for our classes
        return model
    path = Path(weights)
    if not path.is_file():
        raise WeightsMissing(f"Faster R-CNN checkpoint {path} not found: place it there (e.g. under resources/weights/)")
    state = load_state(path)
    state = state.get("model", state)  # our checkpoints wrap the state dict
    model = builder(weights=None, weights_backbone=None, num_classes=num_classes + 1, **sizes)
    model.load_state_dict(state)
    return model


class CocoSplit:
    """Images and labelled boxes of one split of a COCO export (crowd regions left out)."""

    def __init__(self, coco_json: Path, category_index: dict[int, int]):
        self.root = coco_json.parent
        self.coco = evaluate.load_coco(coco_json)
        self.ids = sorted(self.coco.getImgIds())
        self.category_index = category_index

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, image_id: int) -> torch.Tensor:
        info = self.coco.loadImgs(image_id)[0]
        rgb = cv2.cvtColor(cv2.imread(str(self.root / info["file_name"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255)

    def sample(self, image_id: int, flip: bool) -> tuple[torch.Tensor, dict]:
        img = self.image(image_id)
        anns = [a for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=False)) if a["bbox"][2] > 0 and a["bbox"][3] > 0]
        boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns],
                             dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([self.category_index[a["category_id"]] + 1 for a in anns], dtype=torch.int64)
        if flip:
            img = img.flip(-1)
            boxes[:, [0, 2]] = img.shape[-1] - boxes[:, [2, 0]]
        return img, {"boxes": boxes, "labels": labels}


def lr_factor(iteration: int, total: int, settings: dict) -> float:
    """Linear warm-up to 1, then step decay (x0.1 at 2/3 and 8/9 of training) or cosine to 0."""
    warmup = settings["warmup_iters"]
    if iteration < warmup:
        return 0.001 + (1 - 0.001) * iteration / warmup
    if settings["schedule"] == "cosine":
        progress = (iteration - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 0.1 ** sum(iteration >= total * m for m in (2 / 3, 8 / 9))


@torch.inference_mode()
def predict(model: torch.nn.Module, split: CocoSplit, device: torch.device, index_to_category: dict[int, int],
            batch_size: int = 4, score_threshold: float = 0.001) -> list[dict]:
    """COCO results records for every image of a split."""
    model.eval()
    results = []
    for start in range(0, len(split), batch_size):
        ids = split.ids[start : start + batch_size]
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            outputs = model([split.image(i).to(device) for i in ids])
        for image_id, out in zip(ids, outputs):
            for box, label, score in zip(out["boxes"].float().cpu().tolist(), out["labels"].cpu().tolist(), out["scores"].float().cpu().tolist()):
                if score >= score_threshold:
                    results.append({"image_id": image_id, "category_id": index_to_category[label - 1],
                                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": score})
    return results


def train(settings: dict, set_dir: Path, run_dir: Path, seed: int, device: torch.device, categories: list[dict]) -> dict:
    """Train (or resume) one run; returns the run summary written to run_dir/summary.json."""
    torch.manual_seed(seed)
    category_index = {c["category_id"]: c["index"] for c in categories}
    index_to_category = {v: k for k, v in category_index.items()}
    train_split = CocoSplit(set_dir / "coco" / "train.json", category_index)
    val_split = CocoSplit(set_dir / "coco" / "val.json", category_index)
    model = build_model(settings, len(categories)).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if settings["optimizer"] == "sgd":
        optimiser = torch.optim.SGD(params, lr=settings["lr"], momentum=0.9, weight_decay=settings["weight_decay"])
    else:
        optimiser = torch.optim.AdamW(params, lr=settings["lr"], weight_decay=settings["weight_decay"])
    per_epoch = max(1, math.ceil(len(train_split) / settings["batch"]))
    total = settings["iterations"] or settings["epochs"] * per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda it: lr_factor(it, total, settings))
    scaler = torch.amp.GradScaler(enabled=device.type == "cuda" and settings["amp"])
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = {"iteration": 0, "checkpoints": [], "best": {"iteration": None, "AP": -1.0}, "stale": 0, "losses": []}
    last = run_dir / "last.pt"
    if last.is_file():  # resume a killed or requeued run exactly where it stopped
        saved = load_state(last)
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["rng"])  # the RPN and RoI samplers draw from it
        if device.type == "cuda" and "cuda_rng" in saved:
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        state = json.loads(saved["state"])
        print(f"resuming from iteration {state['iteration']} of {total}", flush=True)
    started = time.perf_counter()
    seen = 0
    model.train()
    while state["iteration"] < total and state["stale"] < settings["patience"]:
        it = state["iteration"]
        epoch, position = divmod(it, per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(train_split))
        batch_ids = [train_split.ids[i] for i in order[position * settings["batch"] : (position + 1) * settings["batch"]]]
        flips = np.random.default_rng([seed, 1_000_003, it]).random(len(batch_ids)) < settings["hflip"]
        samples = [train_split.sample(i, bool(f)) for i, f in zip(batch_ids, flips)]
        images = [s[0].to(device) for s in samples]
        targets = [{k: v.to(device) for k, v in s[1].items()} for s in samples]
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda" and settings["amp"]):
            loss = sum(model(images, targets).values())
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimiser)
        torch.nn.utils.clip_grad_norm_(params, settings["clip_grad"])
        scaler.step(optimiser)
        scaler.update()
        schedule.step()
        seen += len(images)
        state["iteration"] = it + 1
        state["losses"].append(round(float(loss.detach()), 5))
        if state["iteration"] % settings["checkpoint_every"] == 0 or state["iteration"] == total:
            _checkpoint(model, val_split, device, index_to_category, ckpt_dir, state)
            model.train()
            full = {"model": model.state_dict(), "optimizer": optimiser.state_dict(), "schedule": schedule.state_dict(),
                    "scaler": scaler.state_dict(), "rng": torch.get_rng_state(), "state": json.dumps(state)}
            if device.type == "cuda":
                full["cuda_rng"] = torch.cuda.get_rng_state_all()
            write_torch(last, full)
    elapsed = time.perf_counter() - started
    summary = {"family": "frcnn", "iterations": state["iteration"], "planned_iterations": total,
               "stopped_early": state["iteration"] < total, "checkpoints": state["checkpoints"], "best": state["best"],
               "loss_first": state["losses"][0] if state["losses"] else None, "loss_last": state["losses"][-1] if state["losses"] else None,
               "train_images_per_s_this_session": round(seen / elapsed, 3) if elapsed > 0 and seen else None}
    write_json(run_dir / "losses.json", state["losses"])
    return summary


def _checkpoint(model, val_split, device, index_to_category, ckpt_dir: Path, state: dict) -> None:
    """Keep this iteration's weights, score them on val, update best.pt and the patience count."""
    name = f"iter_{state['iteration']:06d}.pt"
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    write_torch(ckpt_dir / name, {"model": weights, "iteration": state["iteration"]})
    ap = evaluate.coco_metrics(val_split.coco, predict(model, val_split, device, index_to_category))["AP"] if len(val_split) else -1.0
    state["checkpoints"].append({"name": name, "iteration": state["iteration"], "val_AP": ap})
    if ap > state["best"]["AP"]:
        state["best"] = {"iteration": state["iteration"], "AP": ap, "name": name}
        state["stale"] = 0
        write_torch(ckpt_dir.parent / "best.pt", {"model": weights, "iteration": state["iteration"]})
    else:
        state["stale"] += 1
