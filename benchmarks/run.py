"""`make bench`: performance figures, each printed as a ratio against a floor or baseline
measured in the same run on the same data (never absolute timings alone).

    python benchmarks/run.py [variants|segment ...]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from bgshift import config, drops, images, ingest, segment  # noqa: E402


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
                           "segment": {"method": method}, "drops": demo["drops"],
                           "variants": {**demo["variants"], "scenes_dir": str(REPO / "resources" / "backgrounds")}})
    ingest.run(cfg, root / "ingest")
    drops.run(cfg, root / "ingest" / "annotations.parquet", root / "drops.parquet", root / "tables")
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
                                  seg / "summary.json", seg / "mean_background.png", root / "drops.parquet")
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


def _mean_of(output):
    """A scalar depending on every tensor of a model's (possibly nested) output."""
    import torch

    if isinstance(output, torch.Tensor):
        return output.float().mean()
    values = output.values() if isinstance(output, dict) else output if isinstance(output, (list, tuple)) else []
    return sum((_mean_of(v) for v in values), torch.zeros(()))


def bench_train() -> None:
    """Training images/s at the demo size, against each model's compute floor (forward,
    backward and step on batches already in memory) measured in the same run."""
    import json

    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import run_stages  # the in-process pipeline the tests use

    from bgshift.train import frcnn

    demo = config.load(REPO / "config" / "config.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = config.validate({"seed": 0, "dataset": {"kind": "synthetic", "synthetic": {"num_images": 24}},
                               "segment": {"method": "gt"}, "splits": {"ratios": {"train": 0.75, "val": 0.25, "test": 0}},
                               "variants": {"scenes_dir": str(REPO / "resources" / "backgrounds"), "catalog": {"original": {}}},
                               "sets": {"train": {"original": {"variants": ["original"]}}, "test": []},
                               "train": demo["train"]})
        run_stages(cfg, root)
        set_dir = root / "sets" / "original"
        cats = sorted(__import__("pyarrow.parquet").parquet.read_table(root / "ingest" / "categories.parquet").to_pylist(), key=lambda c: c["index"])
        torch.set_num_threads(2)
        settings = {**cfg["train"]["models"]["frcnn_mobile"], "iterations": 6, "checkpoint_every": 10**6}
        split = frcnn.CocoSplit(set_dir / "coco" / "train.json", {c["category_id"]: c["index"] for c in cats})
        batches = [[split.sample(i, False) for i in split.ids[k : k + settings["batch"]]] for k in range(0, 4 * settings["batch"], settings["batch"])]

        def frcnn_floor():
            torch.manual_seed(0)
            model = frcnn.build_model(settings, len(cats)).train()
            opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
            for it in range(settings["iterations"]):
                imgs, targets = zip(*batches[it % len(batches)])
                loss = sum(model(list(imgs), list(targets)).values())
                opt.zero_grad()
                loss.backward()
                opt.step()

        counter = iter(range(100))

        def frcnn_stage():
            frcnn.train(settings, set_dir, root / f"run{next(counter)}", 0, torch.device("cpu"), cats)

        t_floor, t_stage = best_of(frcnn_floor, frcnn_stage, rounds=2)
        images = settings["iterations"] * settings["batch"]
        print(f"train: Faster R-CNN MobileNetV3-FPN at {settings['min_size']}-{settings['max_size']} px, batch {settings['batch']}, CPU (2 threads)")
        print(f"  compute floor (batches in memory): {images / t_floor:6.2f} images/s")
        print(f"  training loop (decode, flips, schedule, clipping): {images / t_stage:6.2f} images/s")
        print(f"  loop/floor time ratio: {t_stage / t_floor:.2f}x")

        from ultralytics import YOLO
        from ultralytics.nn.tasks import DetectionModel

        y = cfg["train"]["models"]["yolo_n"]
        n_train = len(json.loads((set_dir / "coco" / "train.json").read_text())["images"])
        epochs = 3

        def yolo_floor():
            model = DetectionModel("yolov8n.yaml", nc=len(cats), verbose=False).train()
            opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
            x = torch.rand(y["batch"], 3, y["imgsz"], y["imgsz"])
            for _ in range(epochs * -(-n_train // y["batch"])):
                loss = _mean_of(model(x))
                opt.zero_grad()
                loss.backward()
                opt.step()

        def yolo_stage():
            YOLO("yolov8n.yaml").train(data=str(set_dir / "yolo" / "data.yaml"), epochs=epochs, imgsz=y["imgsz"], batch=y["batch"],
                                       device="cpu", workers=0, plots=False, val=False, verbose=False, project=str(root / "y"),
                                       name=f"r{next(counter)}", exist_ok=True, amp=False)

        t_floor, t_stage = best_of(yolo_floor, yolo_stage, rounds=2)
        images = epochs * n_train
        print(f"train: YOLOv8n at {y['imgsz']} px, batch {y['batch']}, CPU")
        print(f"  compute floor (one batch in memory): {images / t_floor:6.2f} images/s")
        print(f"  ultralytics trainer (loading, mosaic, loss, EMA): {images / t_stage:6.2f} images/s")
        print(f"  trainer/floor time ratio: {t_stage / t_floor:.2f}x")


BENCHES = {"variants": bench_variants, "segment": bench_segment, "train": bench_train}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHES):
        BENCHES[name]()
