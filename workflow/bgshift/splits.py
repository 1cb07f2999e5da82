"""Splits: every source image -> train, val or test; all its variants follow it (no leakage).

Methods: a seeded `ratio` split, a `group` split (whole groups, e.g. a farm or a site,
held out as the test set, as in the sheep-counting study), or the dataset's
`predefined` splits (images without one are split by ratio).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .io import write_parquet

SPLITS = ("train", "val", "test")
SPLITS_SCHEMA = pa.schema([("image_id", pa.int64()), ("split", pa.string()), ("group", pa.string())])


def ratio_split(image_ids: list[int], ratios: dict[str, float], rng: np.random.Generator) -> dict[int, str]:
    """Shuffle, then cut by the ratios (normalised over the splits given)."""
    names = [s for s in SPLITS if ratios.get(s, 0) > 0]
    weights = np.array([ratios[s] for s in names], float)
    order = [image_ids[i] for i in rng.permutation(len(image_ids))]
    cuts = np.round(np.cumsum(weights / weights.sum()) * len(order)).astype(int)
    out, start = {}, 0
    for name, stop in zip(names, cuts):
        out.update({i: name for i in order[start:stop]})
        start = stop
    return out


def assign(images: list[dict], settings: dict, seed: int) -> dict[int, str]:
    rng = np.random.default_rng([seed, 1729])
    ids = sorted(im["image_id"] for im in images)
    method = settings["method"]
    if method == "ratio":
        return ratio_split(ids, settings["ratios"], rng)
    if method == "group":
        test_groups, val_groups = set(settings["test_groups"]), set(settings["val_groups"])
        groups = {im["image_id"]: im["group"] for im in images}
        known = {g for g in groups.values()}
        missing = (test_groups | val_groups) - known
        if missing:
            raise ValueError(f"splits.test_groups/val_groups name groups {sorted(missing)} that no image has; groups: {sorted(map(str, known))}")
        out = {i: "test" for i in ids if groups[i] in test_groups}
        out.update({i: "val" for i in ids if groups[i] in val_groups})
        rest = [i for i in ids if i not in out]
        ratios = {"train": settings["ratios"]["train"], "val": 0 if val_groups else settings["ratios"]["val"]}
        out.update(ratio_split(rest, ratios, rng))
        return out
    mapping = settings["predefined"]
    own = {im["image_id"]: mapping.get(im["split"], im["split"]) for im in images if im["split"]}
    bad = {s for s in own.values() if s not in SPLITS}
    if bad:
        raise ValueError(f"predefined splits {sorted(bad)} are not train/val/test: map them with splits.predefined")
    rest = [i for i in ids if i not in own]
    own.update(ratio_split(rest, settings["ratios"], rng))
    return own


def run(config: dict, images_path: str | Path, out: str | Path) -> dict:
    images = pq.read_table(images_path).to_pylist()
    split_of = assign(images, config["splits"], config["seed"])
    rows = [{"image_id": im["image_id"], "split": split_of[im["image_id"]], "group": im["group"]}
            for im in sorted(images, key=lambda r: r["image_id"])]
    write_parquet(out, pa.Table.from_pylist(rows, schema=SPLITS_SCHEMA))
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    for split in (s for s in SPLITS if not counts[s]):  # the sets that need it stop at their export
        print(f"warning: the {split} split holds no image ({counts})", file=sys.stderr, flush=True)
    return counts


def load(path: str | Path) -> dict[int, str]:
    return {r["image_id"]: r["split"] for r in pq.read_table(path).to_pylist()}
