"""Segment: per image, a foreground mask and per-instance masks, with their source and QC.

Methods: ground truth (`gt`), DeepLabv3 (`deeplabv3`, see deeplab.py), GrabCut inside
each box (`grabcut`, as Xiao et al.), or `auto` (gt where the image has masks, else
DeepLabv3 when a model is available, else GrabCut). Model masks are restricted to the
slightly expanded boxes and split into instances. Images failing QC are marked so the
variant stage leaves them out; every instance with a ground-truth mask can be scored.
"""
from __future__ import annotations

import contextlib
import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import devices, masks
from . import images as imgs
from .ingest.collector import RLE_TYPE
from .io import write_bytes, write_json, write_parquet, write_text
from .progress import progress

INSTANCE_TYPE = pa.struct(
    [("ann_id", pa.int64()), ("segmentation", RLE_TYPE), ("source", pa.string()), ("iou_vs_gt", pa.float64())]
)
SEGMENT_SCHEMA = pa.schema(
    [
        ("image_id", pa.int64()),
        ("mask_source", pa.string()),  # gt | deeplabv3 | grabcut | none (no instances)
        ("foreground", RLE_TYPE),
        ("instances", pa.list_(INSTANCE_TYPE)),
        ("fg_pixels", pa.int64()),
        ("fill_ratio", pa.float64()),  # foreground share of the union of boxes
        ("qc_pass", pa.bool_()),
        ("qc_reason", pa.string()),
        ("decoded", pa.bool_()),  # false: the image does not decode whole (no variant can be made of it)
    ]
)
STATS_SCHEMA = pa.schema(
    [("size", pa.int32()), ("count", pa.int64()), ("sum_rgb", pa.list_(pa.float64())),
     ("pixel_sum", pa.list_(pa.float64())), ("pixel_weight", pa.list_(pa.float64()))]
)
MEAN_IMAGE_SIZE = 96  # the per-pixel mean background is kept at this square size


# ---------------------------------------------------------------- inputs
@dataclass
class Dataset:
    """The canonical tables, grouped for per-image work."""

    images: list[dict]
    annotations: dict[int, list[dict]]
    categories: dict[int, dict]

    @classmethod
    def load(cls, ingest_dir: str | Path, image_ids: Iterable[int] | None = None) -> "Dataset":
        """The whole dataset, or only `image_ids` and their annotations: what a shard job
        reads (turning all of COCO's 828k annotations into Python took seconds per job)."""
        ingest_dir = Path(ingest_dir)
        images = pq.read_table(ingest_dir / "images.parquet")
        annotations = pq.read_table(ingest_dir / "annotations.parquet")
        if image_ids is not None:
            wanted = pa.array(sorted(set(image_ids)), pa.int64())
            images = images.filter(pc.is_in(images["image_id"], value_set=wanted))
            annotations = annotations.filter(pc.is_in(annotations["image_id"], value_set=wanted))
        by_image: dict[int, list[dict]] = defaultdict(list)
        for ann in annotations.to_pylist():
            by_image[ann["image_id"]].append(ann)
        cats = {c["category_id"]: c for c in pq.read_table(ingest_dir / "categories.parquet").to_pylist()}
        return cls(sorted(images.to_pylist(), key=lambda r: r["image_id"]), dict(by_image), cats)


def image_ids(ingest_dir: str | Path) -> list[int]:
    """Every ingested image id, in order (one column read)."""
    return sorted(pq.read_table(Path(ingest_dir) / "images.parquet", columns=["image_id"])["image_id"].to_pylist())


def shard_image_ids(every_image: list[int], index: int, size: int) -> list[int]:
    """Shard k holds images k*size .. (k+1)*size-1 in image-id order (possibly none)."""
    return every_image[index * size : (index + 1) * size]


# ---------------------------------------------------------------- methods
def grabcut_instance(rgb: np.ndarray, box, iterations: int, min_fill: float, margin: float, max_side: int) -> np.ndarray | None:
    """GrabCut initialised with the box (as Xiao et al.), retried once if the mask is tiny.

    It runs on a crop around the box with `margin` x box size of context on each side,
    scaled so its longer side is at most `max_side` (GrabCut's cost grows with pixels),
    and the mask is scaled back. A first mask under `min_fill` of its box is retried with
    the box's central ninth seeded as certain foreground (so the retry always keeps at
    least that). Returns a full-size mask, or None for boxes too small to segment.
    """
    h, w = rgb.shape[:2]
    x, y, bw, bh = box
    pad = max(8.0, margin * max(bw, bh))
    x0, y0 = max(0, int(x - pad)), max(0, int(y - pad))
    x1, y1 = min(w, int(np.ceil(x + bw + pad))), min(h, int(np.ceil(y + bh + pad)))
    scale = min(1.0, max_side / max(x1 - x0, y1 - y0))
    crop = cv2.resize(np.ascontiguousarray(rgb[y0:y1, x0:x1, ::-1]), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rx, ry = int((x - x0) * scale), int((y - y0) * scale)
    rect = (rx, ry, max(1, min(int(np.ceil(bw * scale)), crop.shape[1] - rx)), max(1, min(int(np.ceil(bh * scale)), crop.shape[0] - ry)))
    if rect[2] < 3 or rect[3] < 3:
        return None
    for attempt in range(2):
        gc = np.zeros(crop.shape[:2], np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(attempt)  # GrabCut's k-means init is random: fixed for reproducible masks
        rx, ry, rw, rh = rect
        try:
            if attempt == 0:
                cv2.grabCut(crop, gc, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
            else:  # retry with more iterations, the box centre seeded as certain foreground
                gc[:] = cv2.GC_BGD
                gc[ry : ry + rh, rx : rx + rw] = cv2.GC_PR_FGD
                gc[ry + rh // 3 : ry + rh - rh // 3, rx + rw // 3 : rx + rw - rw // 3] = cv2.GC_FGD
                cv2.grabCut(crop, gc, None, bgd, fgd, 2 * iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            continue
        fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
        if attempt == 1 or fg.sum() >= min_fill * rw * rh:
            full = np.zeros((h, w), np.uint8)
            full[y0:y1, x0:x1] = cv2.resize(fg, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
            return full
    return None


def has_usable_gt(image: dict, anns: list[dict], settings: dict) -> bool:
    """Every instance of the image has a dataset mask, and its group's masks are not hidden."""
    return bool(anns) and all(a["segmentation"] for a in anns) and image["group"] not in settings["ignore_masks_of_groups"]


def expanded_box_mask(box, shape, margin: float) -> np.ndarray:
    x, y, bw, bh = box
    mx, my = bw * margin, bh * margin
    m = np.zeros(shape, np.uint8)
    m[max(0, int(y - my)) : int(np.ceil(y + bh + my)), max(0, int(x - mx)) : int(np.ceil(x + bw + mx))] = 1
    return m


def split_by_boxes(foreground: np.ndarray, boxes: list, margin: float) -> list[np.ndarray]:
    """Restrict a model's foreground to the expanded boxes and split it into instances.

    Pixels inside several boxes go to the smallest box (the more specific object).
    """
    taken = np.zeros(foreground.shape, bool)
    out: list[np.ndarray | None] = [None] * len(boxes)
    for i in sorted(range(len(boxes)), key=lambda i: boxes[i][2] * boxes[i][3]):
        inst = foreground.astype(bool) & expanded_box_mask(boxes[i], foreground.shape, margin).astype(bool) & ~taken
        taken |= inst
        out[i] = inst.astype(np.uint8)
    return out


# ---------------------------------------------------------------- shard job
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


def contact_sheet(entries: list[tuple[np.ndarray, np.ndarray, bool]], thumb: int) -> np.ndarray:
    """Pairs of (image, mask overlay) thumbnails; a red frame marks images failing QC."""
    tiles = []
    for rgb, fg, passed in entries:
        scale = thumb / max(rgb.shape[:2])
        size = (max(1, int(rgb.shape[1] * scale)), max(1, int(rgb.shape[0] * scale)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        m = cv2.resize(fg, size, interpolation=cv2.INTER_NEAREST).astype(bool)
        overlay = small.copy()
        overlay[m] = (0.45 * overlay[m] + 0.55 * np.array([255, 0, 160])).astype(np.uint8)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(overlay, contours, -1, (255, 255, 0), 1)
        pair = np.zeros((thumb, 2 * thumb + 4, 3), np.uint8)
        pair[: size[1], : size[0]] = small
        pair[: size[1], thumb + 4 : thumb + 4 + size[0]] = overlay
        if not passed:
            cv2.rectangle(pair, (0, 0), (pair.shape[1] - 1, pair.shape[0] - 1), (255, 0, 0), 3)
        tiles.append(pair)
    if not tiles:
        return np.zeros((thumb, 2 * thumb + 4, 3), np.uint8)
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=40) for t in tiles[r : r + cols]])
            for r in range(0, len(tiles), cols)]
    return np.vstack(rows)


def write_contact_sheet(ingest_dir: str | Path, masks_path: str | Path, out: str | Path, images: int, thumb: int) -> None:
    """The contact sheet of a shard's first `images` images, drawn from its stored masks.

    A job of its own, so resizing the sheet redraws pictures and reruns no segmentation."""
    paths = {im["image_id"]: im["path"] for im in pq.read_table(Path(ingest_dir) / "images.parquet", columns=["image_id", "path"]).to_pylist()}
    rows = pq.read_table(masks_path, columns=["image_id", "foreground", "qc_pass"]).slice(0, images).to_pylist()
    entries = [(imgs.read_rgb(paths[r["image_id"]]), masks.decode(r["foreground"]), r["qc_pass"]) for r in rows]
    write_bytes(out, imgs.encode_png(contact_sheet(entries, thumb)))


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

    path = deeplab.torchvision_weights_file(settings["deeplabv3"]["arch"]) if weights == "torchvision" else Path(weights)
    return path.is_file()


# ---------------------------------------------------------------- model training
def training_samples(config: dict, ingest_dir: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, union of gt masks) for every image whose masks are usable for training."""
    settings = config["segment"]
    dataset = Dataset.load(ingest_dir)
    samples = []
    for im in dataset.images:
        anns = dataset.annotations.get(im["image_id"], [])
        if not has_usable_gt(im, anns, settings):
            continue
        fg = np.zeros((im["height"], im["width"]), np.uint8)
        for a in anns:
            fg |= masks.decode(a["segmentation"])
        rgb, problem = decode(im)
        if rgb is None:  # the shard job rejects it by name; it teaches nothing here
            print(f"segment model: left out of training, {problem} ({im['file_name']})", flush=True)
            continue
        samples.append((rgb, fg))
    return samples


def train_model(config: dict, ingest_dir: str | Path, out: str | Path) -> dict:
    from . import deeplab

    samples = training_samples(config, ingest_dir)
    devices.use_declared_threads()
    with devices.torch_device(config["segment"]["deeplabv3"]["device"]) as device:
        return deeplab.train(samples, config["segment"]["deeplabv3"], config["seed"], Path(out), device)


# ---------------------------------------------------------------- reduce
def summarise(shards: list[str | Path], stats: list[str | Path], categories: str | Path, annotations: str | Path,
              out_dir: str | Path, tables_dir: str | Path) -> dict:
    """Combine shards: background mean colour and image, QC report, per-class mask IoU table."""
    out_dir, tables_dir = Path(out_dir), Path(tables_dir)
    rows = [r for path in shards for r in pq.read_table(path).to_pylist()]
    total = np.zeros(3)
    count = 0
    size = MEAN_IMAGE_SIZE
    pixel_sum, pixel_weight = np.zeros((size, size, 3)), np.zeros((size, size))
    for path in stats:
        st = pq.read_table(path).to_pylist()[0]
        count += st["count"]
        total += np.array(st["sum_rgb"])
        pixel_sum += np.array(st["pixel_sum"]).reshape(size, size, 3)
        pixel_weight += np.array(st["pixel_weight"]).reshape(size, size)
    mean_rgb = (total / count).tolist() if count else [0.0, 0.0, 0.0]
    mean_image = np.where(pixel_weight[..., None] > 0, pixel_sum / np.maximum(pixel_weight[..., None], 1e-9), mean_rgb)
    write_bytes(out_dir / "mean_background.png", imgs.encode_png(np.clip(np.round(mean_image), 0, 255).astype(np.uint8)))
    if rows and "decoded" not in rows[0]:
        raise ValueError(f"{shards[0]}: segmented by an older bgshift (no 'decoded' column): rerun it "
                         "(snakemake --forcerun segment)")
    failed = [{"image_id": r["image_id"], "reason": r["qc_reason"], "decoded": r["decoded"]} for r in rows if not r["qc_pass"]]
    methods: dict[str, int] = defaultdict(int)
    for r in rows:
        methods[r["mask_source"]] += 1
    summary = {"images": len(rows), "qc_passed": len(rows) - len(failed), "qc_failed": failed,
               "mask_source": dict(sorted(methods.items())), "background_mean_rgb": mean_rgb}
    write_json(out_dir / "summary.json", summary)
    names = {c["category_id"]: c["name"] for c in pq.read_table(categories).to_pylist()}
    cat_of = {a["ann_id"]: a["category_id"] for a in pq.read_table(annotations, columns=["ann_id", "category_id"]).to_pylist()}
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        for inst in r["instances"]:
            if inst["iou_vs_gt"] is not None:
                scores[(r["mask_source"], names[cat_of[inst["ann_id"]]])].append(inst["iou_vs_gt"])
    write_quality_table(scores, tables_dir)
    return summary


def write_quality_table(scores: dict[tuple[str, str], list[float]], tables_dir: Path) -> None:
    """Mean/median mask IoU against ground truth, per method and class, plus each method over all classes."""
    records = [{"method": m, "class": c, "iou": v} for (m, c), values in scores.items() for v in values]
    frame = pd.DataFrame(records, columns=["method", "class", "iou"])
    per_class = frame.groupby(["method", "class"])["iou"].agg(instances="count", mean_iou="mean", median_iou="median")
    overall = frame.assign(**{"class": "all"}).groupby(["method", "class"])["iou"].agg(
        instances="count", mean_iou="mean", median_iou="median")
    table = pd.concat([per_class, overall]).reset_index().round(4)
    write_text(tables_dir / "segmentation_quality.csv", table.to_csv(index=False))
    write_text(tables_dir / "segmentation_quality.md", table.to_markdown(index=False) + "\n")
