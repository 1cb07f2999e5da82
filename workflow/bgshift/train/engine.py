"""The training engine shared by the torchvision families (Faster R-CNN, RetinaNet, the
classifiers), laid out as torchvision's references/detection: a family brings its model and
its training data (what a batch's loss is, how a checkpoint is scored on val: COCO AP or
accuracy; detection.py holds the detectors' data, predictor and family object).

A torch DataLoader (optional decoding workers) over a seeded, resumable batch sampler; SGD
or AdamW; torch's LR schedulers (linear warm-up, then step or cosine decay); a non-finite
loss stops the run naming its last checkpoint; mixed precision on GPU,
gradient clipping, horizontal flips. A checkpoint every `checkpoint_every` iterations is
kept as a file and scored on the val split: the best is also named best.pt (a hard link) and
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
from typing import Callable, Protocol

import numpy as np
import torch

from ..io import link_file, write_json, write_torch
from ..progress import progress
from ..weights import fit, load_state


class TrainingData(Protocol):
    """What the loop trains on: samples keyed (index, flip), the loss components of a batch (the
    list of its samples; the loop optimises their sum and keeps each), a checkpoint's val score."""

    metric: str  # the name of val_score's figure (higher is better)
    samples: torch.utils.data.Dataset
    val_samples: torch.utils.data.Dataset  # the val split keyed (index, flip), as `samples`: its loss at each checkpoint

    def loss(self, model: torch.nn.Module, batch: list, device: torch.device) -> dict[str, torch.Tensor]: ...

    def val_score(self, model: torch.nn.Module, device: torch.device) -> float | None: ...  # None without val samples


def lr_schedule(optimiser: torch.optim.Optimizer, total: int, settings: dict) -> torch.optim.lr_scheduler.LRScheduler:
    """torch's schedulers: linear warm-up from 0.001x, then step decay (x0.1 at 2/3 and 8/9 of
    training) or cosine decay to 0."""
    warmup = min(settings["warmup_iters"], max(0, total - 1))
    rest = max(1, total - warmup)
    if settings["schedule"] == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=rest)
    else:
        milestones = sorted({max(1, math.ceil(total * m) - warmup) for m in (2 / 3, 8 / 9)})
        main = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones=milestones, gamma=0.1)
    if not warmup:
        return main
    ramp = torch.optim.lr_scheduler.LinearLR(optimiser, start_factor=0.001, end_factor=1.0, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimiser, [ramp, main], milestones=[warmup])


class IterationBatches(torch.utils.data.Sampler):
    """The batches of iterations start..total-1: image order from (seed, epoch), flips from
    (seed, iteration), so a resumed run sees exactly the batches an uninterrupted one would."""

    def __init__(self, images: int, batch: int, seed: int, start: int, total: int, hflip: float):
        self.images, self.batch, self.seed, self.start, self.total, self.hflip = images, batch, seed, start, total, hflip
        self.per_epoch = max(1, math.ceil(images / batch))

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self):
        epoch, order = None, None
        for it in range(self.start, self.total):
            if it // self.per_epoch != epoch:  # one permutation per epoch, not per iteration
                epoch = it // self.per_epoch
                order = np.random.default_rng([self.seed, epoch]).permutation(self.images)
            position = it % self.per_epoch
            chosen = order[position * self.batch : (position + 1) * self.batch]
            flips = np.random.default_rng([self.seed, 1_000_003, it]).random(len(chosen)) < self.hflip
            yield [(int(i), bool(f)) for i, f in zip(chosen, flips)]


def as_list(batch: list) -> list:
    """The DataLoader's collate: the batch as the list of samples it is (sizes differ)."""
    return batch


def mixed_precision(device: torch.device, settings: dict) -> torch.autocast:
    """The training step's autocast: float16 on a GPU (`amp`, with the gradient scaler), bfloat16 on
    a CPU where asked (`cpu_bfloat16`: about 1.6x faster on CPUs with AMX units, emulated and slow
    on older ones), otherwise float32. Losses are computed in float32 either way."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16, enabled=settings["amp"])
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings["cpu_bfloat16"])


def train(name: str, build: Callable[[], torch.nn.Module], data: TrainingData, settings: dict, run_dir: Path, seed: int,
          device: torch.device) -> dict:
    """Train (or resume) one run of a torchvision family; returns the run summary. `build` makes
    the model (after seeding: its initial weights are part of what the seed fixes)."""
    torch.manual_seed(seed)
    model = build().to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if settings["optimizer"] == "sgd":
        optimiser = torch.optim.SGD(params, lr=settings["lr"], momentum=0.9, weight_decay=settings["weight_decay"])
    else:
        optimiser = torch.optim.AdamW(params, lr=settings["lr"], weight_decay=settings["weight_decay"])
    per_epoch = max(1, math.ceil(len(data.samples) / settings["batch"]))
    total = settings["iterations"] or settings["epochs"] * per_epoch
    schedule = lr_schedule(optimiser, total, settings)
    scaler = torch.amp.GradScaler(enabled=device.type == "cuda" and settings["amp"])
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = run_dir / "last.pt"
    state = _resume(last, model, optimiser, schedule, scaler, device, total) if last.is_file() else \
        {"iteration": 0, "checkpoints": [], "best": {"iteration": None, data.metric: -1.0}, "stale": 0, "losses": [], "components": {}}
    started, seen = time.perf_counter(), 0
    model.train()
    batches = torch.utils.data.DataLoader(
        data.samples, collate_fn=as_list, num_workers=settings["workers"],
        batch_sampler=IterationBatches(len(data.samples), settings["batch"], seed, state["iteration"], total, settings["hflip"]),
        # its own generator: starting an iterator draws a seed, which must not shift the global RNG
        # that the RPN and RoI samplers draw from (or a resumed run would differ from an uninterrupted one)
        generator=torch.Generator().manual_seed(seed))
    for batch in progress(batches, desc=f"train {name}", total=total, initial=state["iteration"], unit="it"):
        if state["stale"] >= settings["patience"]:
            break
        it = state["iteration"]
        with mixed_precision(device, settings):
            components = data.loss(model, batch, device)
        loss = sum(value.float() for value in components.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name}: loss is {float(loss)} at iteration {it} (learning rate too high?); "
                                     f"the last checkpoint is {last if last.is_file() else 'not written yet'}")
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimiser)
        torch.nn.utils.clip_grad_norm_(params, settings["clip_grad"])
        scaler.step(optimiser)
        scaler.update()
        schedule.step()
        seen += len(batch)
        state["iteration"] = it + 1
        _record(state, loss, components)
        if state["iteration"] % settings["checkpoint_every"] == 0 or state["iteration"] == total:
            _checkpoint(model, data, device, ckpt_dir, state)
            model.train()
            _save_last(last, model, optimiser, schedule, scaler, device, state)
    elapsed = time.perf_counter() - started
    summary = {"family": name, "iterations": state["iteration"], "planned_iterations": total,
               "stopped_early": state["iteration"] < total, "checkpoints": state["checkpoints"], "best": state["best"],
               "loss_first": state["losses"][0] if state["losses"] else None, "loss_last": state["losses"][-1] if state["losses"] else None,
               "train_images_per_s_this_session": round(seen / elapsed, 3) if elapsed > 0 and seen else None}
    write_json(run_dir / "losses.json", state["losses"])
    write_json(run_dir / "loss_components.json", state["components"])  # per iteration; they sum to losses.json
    return summary


def _record(state: dict, loss: torch.Tensor, components: dict[str, torch.Tensor]) -> None:
    """This iteration's loss and each of its components (the curves and the runs' summaries)."""
    state["losses"].append(round(float(loss.detach()), 5))
    for name, value in components.items():
        state["components"].setdefault(name, []).append(round(float(value.detach()), 5))


def _resume(last: Path, model, optimiser, schedule, scaler, device: torch.device, total: int) -> dict:
    """A killed or requeued run's state, restored exactly where it stopped (weights, optimiser,
    schedule, scaler and the random streams the RPN and RoI samplers draw from)."""
    saved = load_state(last)
    fit(model, saved["model"], last, "model being resumed")
    optimiser.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    scaler.load_state_dict(saved["scaler"])
    torch.set_rng_state(saved["rng"])
    if device.type == "cuda" and "cuda_rng" in saved:
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    state = json.loads(saved["state"])
    print(f"resuming from iteration {state['iteration']} of {total}", flush=True)
    return state


def _save_last(last: Path, model, optimiser, schedule, scaler, device: torch.device, state: dict) -> None:
    """Everything `_resume` needs, written atomically beside the checkpoints."""
    full = {"model": model.state_dict(), "optimizer": optimiser.state_dict(), "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict(), "rng": torch.get_rng_state(), "state": json.dumps(state)}
    if device.type == "cuda":
        full["cuda_rng"] = torch.cuda.get_rng_state_all()
    write_torch(last, full)


def _checkpoint(model, data: TrainingData, device, ckpt_dir: Path, state: dict) -> None:
    """Keep this iteration's weights, score them on val, update best.pt and the patience count."""
    name = f"iter_{state['iteration']:06d}.pt"
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    write_torch(ckpt_dir / name, {"model": weights, "iteration": state["iteration"]})
    score = data.val_score(model, device)
    state["checkpoints"].append({"name": name, "iteration": state["iteration"], f"val_{data.metric}": -1.0 if score is None else score,
                                 "val_loss": validation_loss(model, data, device)})
    if score is None or score > state["best"][data.metric]:  # without val samples the latest checkpoint is the best
        state["best"] = {"iteration": state["iteration"], data.metric: -1.0 if score is None else score, "name": name}
        state["stale"] = 0
        link_file(ckpt_dir / name, ckpt_dir.parent / "best.pt")
    else:
        state["stale"] += 1


def validation_loss(model: torch.nn.Module, data: TrainingData, device: torch.device, batch: int = 4) -> dict[str, float] | None:
    """The val split's mean loss components, computed as training computes them (train mode: the
    detectors return losses only then) but with batch norm's statistics and dropout frozen, no
    gradients, and the random streams the samplers draw from restored after: measuring it
    changes nothing that follows. None without val samples."""
    if not len(data.val_samples):
        return None
    model.train()
    for module in model.modules():
        if isinstance(module, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd)):
            module.eval()
    sums: dict[str, float] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        for start in range(0, len(data.val_samples), batch):
            samples = [data.val_samples[(k, False)] for k in range(start, min(len(data.val_samples), start + batch))]
            for name, value in data.loss(model, samples, device).items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(samples)
    return {name: round(total / len(data.val_samples), 5) for name, total in sums.items()}


def checkpoints(done: dict, run_dir: Path) -> list[dict]:
    """best first, then every kept checkpoint with its iteration."""
    best = {"label": "best", "step": done["best"]["iteration"], "path": run_dir / "best.pt"}
    kept = [{"label": Path(c["name"]).stem, "step": c["iteration"], "path": run_dir / "checkpoints" / c["name"]}
            for c in done["checkpoints"]]
    return [best] + kept
