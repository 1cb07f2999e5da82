"""The segment shard job: per image the method's instance masks, their union, QC (with the
reason an image fails) and the background statistics of the images that pass."""
from __future__ import annotations

import contextlib
import csv
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa

from .. import devices, masks
from .. import images as imgs
from ..ingest.tables import Dataset, image_ids, shard_image_ids
from ..io import write_parquet
from ..progress import progress
from .grabcut import grabcut_instance, split_by_boxes
from .schema import MEAN_IMAGE_SIZE, SEGMENT_SCHEMA, STATS_SCHEMA


def has_usable_gt(image: dict, anns: list[dict], settings: dict) -> bool:
    """Every instance of the image has a dataset mask, and its group's masks are not hidden."""
    return bool(anns) and all(a["segmentation"] for a in anns) and image["group"] not in settings["ignore_masks_of_groups"]


@dataclass
class Shard:
    settings: dict
    dataset: Dataset
    segmenter: object | None = None
    accept: set[int] | None = None
    stats: dict = field(default_factory=dict)

    def method_for(self, image: dict, anns: list[dict]) -> str:
        method = self.settings["method"]
        if method != "auto":
            return method
        if has_usable_gt(image, anns, self.settings):
            return "gt"
        return "deeplabv3" if self.segmenter is not None else "grabcut"

    def instance_masks(self, rgb: np.ndarray | None, image: dict, anns: list[dict], method: str,
                       probability: np.ndarray | None) -> tuple[list[np.ndarray | None], list[str]]:
        if method == "gt":
            hidden = image["group"] in self.settings["ignore_masks_of_groups"]
            ms = [masks.decode(a["segmentation"]) if a["segmentation"] and not hidden else None for a in anns]
            return ms, ["gt" if m is not None else "none" for m in ms]
        if method == "grabcut":
            g = self.settings["grabcut"]
            ms = [grabcut_instance(rgb, a["bbox"], g["iterations"], g["min_fill"], g["margin"], g["max_side"]) for a in anns]
            return ms, ["grabcut" if m is not None else "none" for m in ms]
        fg = (probability >= self.settings["deeplabv3"]["threshold"]).astype(np.uint8)
        ms = [m if m.any() else None for m in split_by_boxes(fg, [a["bbox"] for a in anns], self.settings["deeplabv3"]["box_margin"])]
        return ms, ["deeplabv3" if m is not None else "none" for m in ms]

    def qc(self, image: dict, anns: list[dict], inst: list, fg: np.ndarray) -> tuple[float, str]:
        """Fill ratio and the reasons (empty when the image passes)."""
        q = self.settings["qc"]
        if not anns:
            return 0.0, ""  # a background-only image: nothing to segment
        boxes = masks.boxes_mask([a["bbox"] for a in anns], fg.shape).astype(bool)
        fill = float(np.count_nonzero(fg.astype(bool) & boxes) / max(1, np.count_nonzero(boxes)))
        reasons = []
        missing = sum(m is None or not m.any() for m in inst)  # one rule for every method: no pixel, no mask
        if missing:
            reasons.append(f"{missing} of {len(anns)} instances have no mask")
        pixels = int(fg.sum())
        if pixels < q["min_fg_pixels"]:
            reasons.append(f"foreground has {pixels} pixels, below segment.qc.min_fg_pixels={q['min_fg_pixels']}")
        if not q["min_fill_ratio"] <= fill <= q["max_fill_ratio"]:
            reasons.append(f"mask fills {fill:.2f} of its boxes, outside segment.qc fill range [{q['min_fill_ratio']}, {q['max_fill_ratio']}]")
        if self.accept is not None and image["image_id"] not in self.accept:
            reasons.append("not in segment.qc.accept_list")
        return fill, "; ".join(reasons) + (f" ({image['file_name']})" if reasons else "")  # the file a person opens

    def add_stats(self, rgb: np.ndarray, fg: np.ndarray) -> None:
        """Accumulate the background's colour sum and its per-pixel mean at a fixed size."""
        bg = (fg == 0).astype(np.float64)
        s = MEAN_IMAGE_SIZE
        st = self.stats
        st.setdefault("count", 0)
        st["count"] += int(bg.sum())
        st["sum_rgb"] = st.get("sum_rgb", np.zeros(3)) + (rgb.astype(np.float64) * bg[..., None]).sum((0, 1))
        small_rgb = cv2.resize(rgb.astype(np.float64) * bg[..., None], (s, s), interpolation=cv2.INTER_AREA)
        st["pixel_sum"] = st.get("pixel_sum", np.zeros((s, s, 3))) + small_rgb
        st["pixel_weight"] = st.get("pixel_weight", np.zeros((s, s))) + cv2.resize(bg, (s, s), interpolation=cv2.INTER_AREA)

    def process(self, shard_images: list[dict]) -> list[dict]:
        """Segment the shard, in batches so at most one batch of decoded images is held."""
        rows = []
        batch = max(1, self.settings["deeplabv3"]["batch_size"])
        bar = progress(desc="segment", total=len(shard_images), unit="image")
        for start in range(0, len(shard_images), batch):
            bar.update(min(batch, len(shard_images) - start))
            decoded = [(im, *decode(im)) for im in shard_images[start : start + batch]]
            rows += [unreadable_row(im, problem) for im, _, problem in decoded if problem]
            chunk, pixels = [im for im, rgb, _ in decoded if rgb is not None], [rgb for _, rgb, _ in decoded if rgb is not None]
            annss = [self.dataset.annotations.get(im["image_id"], []) for im in chunk]
            methods = [self.method_for(im, anns) for im, anns in zip(chunk, annss)]
            need = [i for i, m in enumerate(methods) if m == "deeplabv3"]
            probs: dict[int, np.ndarray] = {}
            if need:
                if self.segmenter is None:
                    raise ValueError("segment.method needs DeepLabv3 but no model was loaded")
                for i, p in zip(need, self.segmenter.foreground_probability([pixels[i] for i in need])):
                    probs[i] = p
            for i, (im, anns, method, rgb) in enumerate(zip(chunk, annss, methods, pixels)):
                inst, sources = self.instance_masks(rgb, im, anns, method, probs.get(i))
                fg = np.zeros((im["height"], im["width"]), np.uint8)
                for m in inst:
                    if m is not None:
                        fg |= m
                fill, reason = self.qc(im, anns, inst, fg)
                instances = []
                for a, m, src in zip(anns, inst, sources):
                    iou = None
                    if self.settings["score"] and method != "gt" and a["segmentation"]:
                        iou = masks.iou(m, masks.decode(a["segmentation"])) if m is not None else 0.0  # a miss scores 0
                    instances.append({"ann_id": a["ann_id"], "segmentation": masks.encode(m) if m is not None else None,
                                      "source": src, "iou_vs_gt": iou})
                rows.append({"image_id": im["image_id"], "mask_source": method if anns else "none",
                             "foreground": masks.encode(fg), "instances": instances, "fg_pixels": int(fg.sum()),
                             "fill_ratio": fill, "qc_pass": not reason, "qc_reason": reason, "decoded": True})
                if not reason:
                    self.add_stats(rgb, fg)
        bar.close()
        return sorted(rows, key=lambda r: r["image_id"])


def decode(image: dict) -> tuple[np.ndarray | None, str]:
    """An image's pixels, or None and why it cannot be used: segmentation is the first stage that
    decodes every image, whether or not ingest verified them."""
    try:
        return imgs.read_rgb_whole(image["path"], image["height"], image["width"]), ""
    except (imgs.ImageProblem, OSError) as exc:
        return None, str(exc)


def unreadable_row(image: dict, problem: str) -> dict:
    """The QC failure of an image that does not decode whole (named, and counted like any other)."""
    empty = np.zeros((image["height"], image["width"]), np.uint8)
    return {"image_id": image["image_id"], "mask_source": "none", "foreground": masks.encode(empty), "instances": [],
            "fg_pixels": 0, "fill_ratio": 0.0, "qc_pass": False, "qc_reason": f"{problem} ({image['file_name']})",
            "decoded": False}


def read_accept_list(path: str | None) -> set[int] | None:
    """A person's list of well-segmented images: a CSV with an image_id column."""
    if not path:
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if "image_id" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: the accept list needs an 'image_id' column")
        return {int(row["image_id"]) for row in reader if row["image_id"].strip()}


def run_shard(config: dict, ingest_dir: str | Path, shard: int, out_parquet: str | Path, out_stats: str | Path,
              model: str | Path | None = None) -> dict:
    """Segment one shard: masks table and background statistics."""
    settings = config["segment"]
    dataset = Dataset.load(ingest_dir, shard_image_ids(image_ids(ingest_dir), shard, config["shard_size"]))
    shard_images = dataset.images
    with contextlib.ExitStack() as held:
        segmenter = None
        if settings["method"] in ("deeplabv3", "auto") and _model_available(settings, model):
            from . import deeplab

            devices.use_declared_threads()
            device = held.enter_context(devices.torch_device(settings["deeplabv3"]["device"]))
            segmenter = deeplab.load(settings["deeplabv3"], device, trained=Path(model) if model else None)
        job = Shard(settings, dataset, segmenter, read_accept_list(settings["qc"]["accept_list"]))
        rows = job.process(shard_images)
    write_parquet(out_parquet, pa.Table.from_pylist(rows, schema=SEGMENT_SCHEMA))
    s = MEAN_IMAGE_SIZE
    st = job.stats
    stats_row = {"size": s, "count": st.get("count", 0), "sum_rgb": list(st.get("sum_rgb", np.zeros(3))),
                 "pixel_sum": st.get("pixel_sum", np.zeros((s, s, 3))).ravel().tolist(),
                 "pixel_weight": st.get("pixel_weight", np.zeros((s, s))).ravel().tolist()}
    write_parquet(out_stats, pa.Table.from_pylist([stats_row], schema=STATS_SCHEMA))
    return {"images": len(rows), "qc_failed": sum(not r["qc_pass"] for r in rows)}


def _model_available(settings: dict, trained: str | Path | None) -> bool:
    weights = settings["deeplabv3"]["weights"]
    if settings["method"] == "deeplabv3":
        return True  # forced: loading raises a clear error when weights are missing
    if weights == "train":
        return trained is not None and Path(trained).is_file()
    from . import deeplab

    return deeplab.available(settings["deeplabv3"])
