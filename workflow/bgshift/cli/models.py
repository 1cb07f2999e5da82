"""The model stages' commands: training, adopting an evaluate-only model, detection and scoring."""
from __future__ import annotations

import argparse
import json

from .registry import DEVICE, command, load_config


@command("train", "train one (model, training set, seed) run; resumes from its last checkpoint", True, [
    ("--model", {"required": True}), ("--set-dir", {"required": True}), ("--seed", {"required": True}),
    ("--categories", {"required": True}), ("--run-dir", {"required": True}), ("--done", {"required": True}),
    ("--workers", {"type": int, "default": 0, "help": "DataLoader processes decoding training images (train.models.*.workers)"}),
    DEVICE])
def cmd_train(args: argparse.Namespace) -> None:
    from .. import train

    config = load_config(args)
    model = config["train"]["models"][args.model]
    if "workers" in model:  # the families that decode with a DataLoader; how many processes is not what is learnt
        model["workers"] = args.workers
    summary = train.run(config, args.model, args.set_dir, int(args.seed), args.categories, args.run_dir, args.done, args.device)
    print(json.dumps(summary, indent=2, sort_keys=True))


@command("adopt", "an evaluate-only model as a run: its weights found, its classes mapped onto the dataset's", True, [
    ("--model", {"required": True}), ("--categories", {"required": True}), ("--done", {"required": True})])
def cmd_adopt(args: argparse.Namespace) -> None:
    from .. import evaluate

    print(json.dumps(evaluate.adopt(load_config(args), args.model, args.categories, args.done), indent=2, sort_keys=True))


@command("backbone", "the ResNet body of a trained RetinaNet run, as a weights file a RetinaNet can start from", False, [
    ("--checkpoint", {"required": True, "help": "a run's best.pt"}), ("--out", {"required": True})])
def cmd_backbone(args: argparse.Namespace) -> None:
    from ..io import write_torch
    from ..train.retinanet import backbone_state
    from ..weights import load_state

    body = backbone_state(load_state(args.checkpoint)["model"])
    write_torch(args.out, body)
    print(json.dumps({"out": args.out, "tensors": len(body), "parameters": sum(v.numel() for v in body.values())}))


@command("detect", "run a trained run's checkpoints on the test sets; keep raw detections", True, [
    ("--model", {"required": True}), ("--done", {"required": True}), ("--test-sets", {"nargs": "+", "required": True}),
    ("--categories", {"required": True}), ("--out", {"required": True}), DEVICE])
def cmd_detect(args: argparse.Namespace) -> None:
    from .. import evaluate

    test_sets = {p.rstrip("/").split("/")[-1]: p for p in args.test_sets}
    summary = evaluate.detect(load_config(args), args.model, args.done, test_sets, args.categories, args.out, args.device)
    print(f"{len(summary['evaluations'])} evaluations")


@command("score", "metrics from stored detections (no inference), and each test image's part in them", True, [
    ("--manifest", {"required": True}), ("--out", {"required": True}), ("--per-image", {"required": True}),
    ("--background-only", {"nargs": "*", "default": [], "help": "test sets with no object left (scored by false positives)"}),
    ("--saliency", {"default": None, "help": "the run's saliency.parquet (adds fg_attention and fg_area)"}),
    ("--run", {"default": None, "help": "the run's done.json (adds its training and val losses)"})])
def cmd_score(args: argparse.Namespace) -> None:
    from .. import evaluate

    rows = evaluate.score(load_config(args), args.manifest, args.out, args.per_image, tuple(args.background_only), args.saliency, args.run)
    print(f"{rows} metric rows")


@command("saliency", "saliency maps of a run's best checkpoint on the test sets, and their share on the objects", True, [
    ("--model", {"required": True}), ("--done", {"required": True}), ("--test-sets", {"nargs": "+", "required": True}),
    ("--categories", {"required": True}), ("--out", {"required": True}), ("--sheet", {"required": True}), DEVICE])
def cmd_saliency(args: argparse.Namespace) -> None:
    from .. import saliency

    test_sets = {p.rstrip("/").split("/")[-1]: p for p in args.test_sets}
    maps = saliency.explain(load_config(args), args.model, args.done, test_sets, args.categories, args.out, args.sheet, args.device)
    print(f"{maps} saliency maps")
