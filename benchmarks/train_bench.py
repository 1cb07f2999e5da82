"""Training speed of the families on a small world."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bgshift import config
from common import REPO, best_of


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

    from bgshift.train import detection, frcnn

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
        split = detection.CocoSplit(set_dir / "coco" / "train.json", {c["category_id"]: c["index"] for c in cats}, frcnn.LABEL_OFFSET)
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
            frcnn.FAMILY.train(settings, set_dir, root / f"run{next(counter)}", 0, False, cats)

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
