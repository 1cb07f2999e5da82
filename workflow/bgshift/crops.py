"""Crops: classification samples cut from a set's variant images, one per labelled object.

The variants are made first and cropped after, so a crop's context shows the variant's
background treatment (Xiao et al.'s Only-BG-T crop of a sheep is the tiled background where
the sheep stood). The window is a square around the object's box, `margin` box sides of
context on each side (the reduced-region factor: 0 is the object alone), moved inside the
image, resized to `side` x `side` pixels; or, with `window: image` (datasets of one object per
image, as ImageNet-9), the whole image is the sample. Background-only
variants have no objects left in their rows; their windows come from the source annotations,
and their class is the class of the object that was there.

Exports per split, like the detection sets: an ImageFolder tree (`imagefolder/{split}/{class}/`,
loaded as is by torchvision's ImageFolder and ultralytics' classify trainer) and Parquet whose
`label` is a `datasets` ClassLabel, with provenance (source image, object, variant, donor, seed).

The backgrounds challenge set (Xiao et al.) puts each test object's foreground on the Only-BG-T
backgrounds of K other test images; a classifier passes a foreground only if it is right on all K.
"""
from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import cv2
import datasets
import numpy as np
import pyarrow.parquet as pq

from . import masks
from .images import decode_rgb, encode_jpeg
from .io import PartWriter, atomic_dir, read_categories, write_json
from .sets import CHALLENGE_SET

DONOR_CACHE = 64  # decoded challenge backgrounds kept: 640x480 RGB is 0.9 MB each
JPEG_QUALITY = 95  # a crop is resampled, so it is encoded anew; high quality keeps the second encoding faint


def features(class_names: list[str]) -> datasets.Features:
    return datasets.Features({
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=class_names),
        "image_id": datasets.Value("int64"),  # source image
        "ann_id": datasets.Value("int64"),  # the object (ingest's annotation id)
        "variant": datasets.Value("string"),
        "donor_id": datasets.Value("int64"),  # whose background surrounds it (mixed_*, the challenge)
        "seed": datasets.Value("int64"),
        "set": datasets.Value("string"),
        "split": datasets.Value("string"),
        "repeat": datasets.Value("int32"),
        "window": datasets.List(datasets.Value("int32"), length=4),  # x0, y0, x1, y1 in the variant image
        # the object's mask in the crop (COCO RLE, side x side; its box where it has no mask): saliency's foreground
        "mask": {"size": datasets.List(datasets.Value("int32"), length=2), "counts": datasets.Value("string")},
    })


def window(bbox, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The crop window (x0, y0, x1, y1) around an (x, y, w, h) box: a square of side
    max(w, h) x (1 + 2 margin) centred on the box, moved inside the image; narrower only
    along an axis where the image is smaller than that (the whole box stays in)."""
    x, y, w, h = bbox
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    across, down = min(side, width), min(side, height)
    x0 = min(max(0, round(x + w / 2 - across / 2)), width - across)
    y0 = min(max(0, round(y + h / 2 - down / 2)), height - down)
    return x0, y0, x0 + across, y0 + down


def cut(pixels: np.ndarray, corners: tuple[int, int, int, int], side: int) -> np.ndarray:
    x0, y0, x1, y1 = corners
    return cv2.resize(pixels[y0:y1, x0:x1], (side, side), interpolation=cv2.INTER_AREA)


def cut_mask(obj: dict, corners: tuple[int, int, int, int], side: int, width: int, height: int) -> dict:
    """The object's mask cut and resized with its crop, as RLE; its box where it has no mask (box-only
    datasets, and the source objects that background-only variants' windows come from)."""
    if obj.get("segmentation"):
        whole = masks.decode(obj["segmentation"])
    else:
        whole = masks.boxes_mask([obj["bbox"]], (height, width))
    return masks.encode(cut(whole.astype(np.float32), corners, side) >= 0.5)


def class_folder(name: str) -> str:
    """A category name as an ImageFolder class folder (names come from the dataset: checked)."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"category name {name!r} cannot be a class folder of the classification export")
    return name


def source_objects(annotations_path: Path) -> dict[int, list[dict]]:
    """The labelled, non-crowd objects of each source image (windows of background-only variants)."""
    table = pq.read_table(annotations_path, columns=["ann_id", "image_id", "category_id", "bbox", "iscrowd", "labelled"])
    out: dict[int, list[dict]] = {}
    for obj in table.to_pylist():
        if obj["labelled"] and not obj["iscrowd"]:
            out.setdefault(obj["image_id"], []).append(obj)
    return out


def objects_of(row: dict, sources: dict[int, list[dict]]) -> list[dict]:
    """The objects a row is cut around: its own labelled ones, or the source's if the variant removed them."""
    if row["background_only"]:
        return sources.get(row["image_id"], [])
    return [o for o in row["objects"] if o["labelled"] and not o["iscrowd"]]


def sample_windows(objects: list[dict], settings: dict, width: int, height: int, skipped: Counter) -> list[tuple[dict, tuple]]:
    """(object, window) of each sample an image gives: one per object, or with `window: image`
    the whole image as the one sample of its single object (an image with none or several
    labelled objects gives none and is counted in `skipped` with the reason)."""
    if settings["window"] == "object":
        return [(o, window(o["bbox"], settings["margin"], width, height)) for o in objects]
    if len(objects) != 1:
        skipped["no labelled object" if not objects else "several labelled objects"] += 1
        return []
    return [(objects[0], (0, 0, width, height))]


def record(obj: dict, index_of: dict[int, int], row: dict, corners: tuple, side: int, **provenance) -> dict:
    """A sample's row (all but its image): the object's class, where it was cut, its mask there, and `provenance`."""
    return {"label": index_of[obj["category_id"]], "image_id": row["image_id"], "ann_id": obj["ann_id"],
            "window": list(corners), "mask": cut_mask(obj, corners, side, row["width"], row["height"]), **provenance}


def set_samples(set_dir: Path, split: str, sources: dict[int, list[dict]], index_of: dict[int, int], settings: dict,
                skipped: Counter):
    """(sample row, pixels) for every object of one split of a set, in the set's row order."""
    for part in sorted((set_dir / "parquet" / split).glob("*.parquet")):
        for row in pq.read_table(part).to_pylist():
            pixels = decode_rgb(row["image"]["bytes"])
            for obj, corners in sample_windows(objects_of(row, sources), settings, row["width"], row["height"], skipped):
                yield (record(obj, index_of, row, corners, settings["side"], variant=row["variant"], donor_id=row["donor_id"], seed=row["seed"],
                              set=row["set"], split=split, repeat=row["repeat"]), cut(pixels, corners, settings["side"]))


def challenge_samples(original_dir: Path, only_bg_t_dir: Path, index_of: dict[int, int], settings: dict, seed: int,
                      skipped: Counter):
    """Each test object's foreground (its own mask) on the Only-BG-T backgrounds of K other test
    images (classify.challenge.backgrounds), resized to its image as mixed_* variants do, cut at
    the object's window."""
    backgrounds = settings["challenge"]["backgrounds"]
    donors = {}
    for part in sorted((only_bg_t_dir / "parquet" / "test").glob("*.parquet")):
        for row in pq.read_table(part, columns=["image", "image_id"]).to_pylist():
            donors[row["image_id"]] = row["image"]["bytes"]
    donor_ids = sorted(donors)
    if len(donor_ids) <= backgrounds:
        raise ValueError(f"classify.challenge.backgrounds: {backgrounds} backgrounds per foreground need more than "
                         f"{backgrounds} test images; the test split has {len(donor_ids)}")

    @functools.lru_cache(maxsize=DONOR_CACHE)
    def background(donor_id: int, width: int, height: int) -> np.ndarray:
        """A donor decoded (and resized) once while it serves many foregrounds in a row."""
        pixels = decode_rgb(donors[donor_id])
        if pixels.shape[:2] != (height, width):
            pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
        return pixels

    for part in sorted((original_dir / "parquet" / "test").glob("*.parquet")):
        for row in pq.read_table(part).to_pylist():
            if not row["mask_qc"]:  # an original kept whole: no mask to cut its objects out with
                skipped["masks failed segment QC"] += 1
                continue
            pixels = decode_rgb(row["image"]["bytes"])
            for obj, corners in sample_windows(objects_of(row, {}), settings, row["width"], row["height"], skipped):
                foreground = masks.decode(obj["segmentation"]).astype(bool)[..., None]
                others = [d for d in donor_ids if d != row["image_id"]]
                chosen = np.random.default_rng([seed, row["image_id"], obj["ann_id"]]).choice(len(others), backgrounds, replace=False)
                for k in sorted(chosen):
                    donor = background(others[k], row["width"], row["height"])
                    yield (record(obj, index_of, row, corners, settings["side"], variant="challenge", donor_id=others[k], seed=seed,
                                  set=CHALLENGE_SET, split="test", repeat=0),
                           cut(np.where(foreground, pixels, donor), corners, settings["side"]))


def write(samples, skipped: dict[str, Counter], categories: list[dict], out_dir: Path, part_rows: int) -> dict:
    """Write the ImageFolder tree and the Parquet parts of `samples` ({split: iterable}) atomically;
    summary.json counts the samples per class and the images left out (`skipped`, by split)."""
    names = [c["name"] for c in categories]
    folders = [class_folder(n) for n in names]
    schema = features(names).arrow_schema
    counts = {}
    with atomic_dir(out_dir) as tmp:
        for split in samples:
            for folder in folders:  # every class in every split, so ImageFolder finds the same classes
                (tmp / "imagefolder" / split / folder).mkdir(parents=True, exist_ok=True)
            parts, per_class = PartWriter(tmp / "parquet" / split, schema, part_rows), [0] * len(names)
            for sample, pixels in samples[split]:
                data = encode_jpeg(pixels, JPEG_QUALITY)
                file_name = f"{sample['variant']}_{sample['image_id']}_{sample['ann_id']}"
                file_name += (f"_d{sample['donor_id']}" if sample["variant"] == "challenge" else "") + (f"_r{sample['repeat']}" if sample["repeat"] else "") + ".jpg"
                (tmp / "imagefolder" / split / folders[sample["label"]] / file_name).write_bytes(data)
                parts.add({**sample, "image": {"bytes": data, "path": file_name}})
                per_class[sample["label"]] += 1
            parts.close()
            counts[split] = {"samples": sum(per_class), "per_class": dict(zip(names, per_class)),
                             "images_left_out": dict(sorted(skipped[split].items()))}
        write_json(tmp / "summary.json", {"classes": names, "splits": counts})
    return counts


def export(settings: dict, part_rows: int, set_dir: str | Path, annotations_path: str | Path, categories_path: str | Path,
           out_dir: str | Path) -> dict:
    """The crops of one set (`settings`: the classify section)."""
    set_dir = Path(set_dir)
    categories, index_of = read_categories(categories_path)
    sources = source_objects(Path(annotations_path))
    splits = sorted(p.name for p in (set_dir / "parquet").iterdir() if p.is_dir())
    skipped = {split: Counter() for split in splits}
    samples = {split: set_samples(set_dir, split, sources, index_of, settings, skipped[split]) for split in splits}
    return write(samples, skipped, categories, Path(out_dir), part_rows)


def export_challenge(settings: dict, part_rows: int, seed: int, original_dir: str | Path, only_bg_t_dir: str | Path,
                     categories_path: str | Path, out_dir: str | Path) -> dict:
    """The backgrounds challenge set (`settings`: the classify section)."""
    categories, index_of = read_categories(categories_path)
    skipped = {"test": Counter()}
    samples = {"test": challenge_samples(Path(original_dir), Path(only_bg_t_dir), index_of, settings, seed, skipped["test"])}
    return write(samples, skipped, categories, Path(out_dir), part_rows)
