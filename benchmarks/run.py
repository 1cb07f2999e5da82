"""`make bench`: performance figures, each printed as a ratio against a floor or baseline
measured in the same run on the same data (never absolute timings alone).

    python benchmarks/run.py [variants|segment ...]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from bgshift import config, images, ingest, segment  # noqa: E402


def best_of(*fns, rounds: int = 3) -> list[float]:
    """Fastest time of each function over interleaved rounds (a, b, a, b, ...), so a
    baseline and its contender see the same machine conditions."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def demo_world(root: Path, n: int, width: int, height: int, method: str = "gt") -> dict:
    demo = config.load(REPO / "config" / "config.yaml")
    cfg = config.validate({"seed": 0, "shard_size": n,
                           "dataset": {"kind": "synthetic", "synthetic": {"num_images": n, "width": width, "height": height}},
                           "segment": {"method": method},
                           "variants": {**demo["variants"], "scenes_dir": str(REPO / "resources" / "backgrounds")}})
    ingest.run(cfg, root / "ingest")
    return cfg


def bench_variants() -> None:
    from bgshift.variants import engine, expand

    n, width, height = 24, 640, 480
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = demo_world(root, n, width, height)
        seg = root / "seg"
        segment.run_shard(cfg, root / "ingest", 0, seg / "0.parquet", seg / "sheet.png", seg / "stats.parquet")
        segment.summarise([seg / "0.parquet"], [seg / "stats.parquet"], root / "ingest" / "categories.parquet",
                          root / "ingest" / "annotations.parquet", seg, root / "tables")
        specs = expand(cfg["variants"])
        k, quality = len(specs), cfg["variants"]["jpeg_quality"]
        paths = [im["path"] for im in segment.Dataset.load(root / "ingest").images]

        def floor():  # the codec work alone, in OpenCV's native channel order
            for path in paths:
                pixels = images.read_bgr(path)
                for _ in range(k):
                    images.encode_jpeg_bgr(pixels, quality)

        def stage():
            job = engine.ShardJob(cfg, root / "ingest", seg / "0.parquet", [seg / "0.parquet"], 0,
                                  seg / "summary.json", seg / "mean_background.png")
            job.run(root / "out", "00000")

        t_floor, t_stage = best_of(floor, stage, rounds=5)
    per = lambda t: 1000 * t / n  # noqa: E731
    print(f"variants: {k} variants of {n} images at {width}x{height}, JPEG q{quality}, one process")
    print(f"  floor (decode once + {k} encodes): {per(t_floor):7.1f} ms/image")
    print(f"  variant stage (whole shard job):   {per(t_stage):7.1f} ms/image")
    print(f"  ratio stage/floor: {t_stage / t_floor:.2f}x (target <= 1.50x)")


def bench_segment() -> None:
    import torch

    from bgshift import deeplab

    n = 32
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = demo_world(root, n, 320, 240)
        ds = segment.Dataset.load(root / "ingest")
        pictures = [images.read_rgb(im["path"]) for im in ds.images]
        anns = [ds.annotations.get(im["image_id"], []) for im in ds.images]
        torch.manual_seed(0)
        settings = {**cfg["segment"]["deeplabv3"], "input_size": 320}
        import torchvision.models.segmentation as tv

        model = tv.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
        device = deeplab.pick_device(settings["device"])
        fast = deeplab.Segmenter(model.to(device, memory_format=torch.channels_last).eval(), "torchvision", 320, device)
        naive_model = tv.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).to(device).eval()
        naive_model.load_state_dict(model.state_dict())

        def batched():
            for i in range(0, n, 8):
                fast.foreground_probability(pictures[i : i + 8])

        def naive():  # batch 1, contiguous NCHW, autograd on: the loop people write first
            for pic in pictures:
                x = fast.preprocess([pic]).contiguous()
                out = naive_model(x)["out"]
                (1 - torch.softmax(out, 1)[:, 0]).detach().cpu().numpy()

        t_fast, t_naive = best_of(batched, naive, rounds=2)
        g = cfg["segment"]["grabcut"]

        def grabcut():
            for pic, a in zip(pictures, anns):
                for ann in a:
                    segment.grabcut_instance(pic, ann["bbox"], g["iterations"], g["min_fill"], g["margin"], g["max_side"])

        (t_gc,) = best_of(grabcut, rounds=1)
    boxes = sum(len(a) for a in anns)
    print(f"segment: DeepLabv3-MobileNetV3 at 320x320 on {device}, {n} images")
    print(f"  naive loop (batch 1, no channels_last, autograd): {n / t_naive:6.1f} images/s")
    print(f"  stage path (batch 8, channels_last, inference_mode): {n / t_fast:6.1f} images/s")
    print(f"  speed-up: {t_naive / t_fast:.2f}x")
    print(f"  GrabCut in boxes: {n / t_gc:6.1f} images/s ({boxes / t_gc:.1f} boxes/s, {boxes} boxes)")


BENCHES = {"variants": bench_variants, "segment": bench_segment}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHES):
        BENCHES[name]()
