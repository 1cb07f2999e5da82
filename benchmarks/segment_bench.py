"""Segmentation's shard job and its DeepLab batches."""
from __future__ import annotations

import tempfile
from pathlib import Path

from bgshift import images, segment
from bgshift.ingest import tables
from common import best_of, demo_world


def bench_segment() -> None:
    import torch

    from bgshift.segment import deeplab

    n = 32
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = demo_world(root, n, 320, 240)
        ds = tables.Dataset.load(root / "ingest")
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
