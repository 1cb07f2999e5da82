"""Annotation-drop schemes (missing-annotation experiments), seeded and recorded per annotation.

A dropped annotation is not deleted: it becomes an *unlabelled* instance, which the
exports leave out of COCO/YOLO labels and which unl_* masking variants can cover.
Only labelled, non-crowd annotations are candidates. Fractions round down, like `hard`.
`categories` removes every annotation of the classes it names (a labelled context class such
as "sea" beside whales, for the correlated-class experiment).
"""
from __future__ import annotations

import math
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .io import write_parquet, write_table

DROPS_SCHEMA = pa.schema([("scheme", pa.string()), ("ann_id", pa.int64()), ("image_id", pa.int64()), ("dropped", pa.bool_())])


def choose(kind: str, fraction: float, candidates: list[dict], rng: np.random.Generator,
           category_ids: frozenset[int] = frozenset()) -> set[int]:
    """ann_ids dropped by one scheme among the candidates (sorted by ann_id for determinism);
    `category_ids`: the classes a `categories` scheme removes whole."""
    by_image: dict[int, list[int]] = defaultdict(list)
    for a in candidates:
        by_image[a["image_id"]].append(a["ann_id"])
    dropped: set[int] = set()
    if kind == "normal":
        return dropped
    if kind == "categories":  # every annotation of the named classes (the context-class experiment)
        return {a["ann_id"] for a in candidates if a["category_id"] in category_ids}
    if kind in ("easy", "hard", "extreme"):
        for image_id in sorted(by_image):
            ids = by_image[image_id]
            n = len(ids)
            count = {"easy": 1 if n >= 2 else 0, "hard": n // 2 if n >= 2 else 0, "extreme": n - 1}[kind]
            dropped.update(ids[j] for j in rng.choice(n, size=count, replace=False))
        return dropped
    if kind == "fraction_per_category":
        by_cat: dict[int, list[int]] = defaultdict(list)
        for a in candidates:
            by_cat[a["category_id"]].append(a["ann_id"])
        for cat in sorted(by_cat):
            ids = by_cat[cat]
            dropped.update(ids[j] for j in rng.choice(len(ids), size=math.floor(fraction * len(ids)), replace=False))
        return dropped
    ids = [a["ann_id"] for a in candidates]  # kind == "fraction": over all annotations
    return {ids[j] for j in rng.choice(len(ids), size=math.floor(fraction * len(ids)), replace=False)}


def named_categories(scheme: dict, name: str, categories_path: Path) -> frozenset[int]:
    """The category ids a `categories` scheme names, each checked against the dataset's classes."""
    if scheme["kind"] != "categories":
        return frozenset()
    ids = {c["name"]: c["category_id"] for c in pq.read_table(categories_path, columns=["name", "category_id"]).to_pylist()}
    unknown = [c for c in scheme.get("categories", []) if c not in ids]
    if unknown or not scheme.get("categories"):
        raise ValueError(f"drops.{name}.categories: {unknown or 'none named'} (the dataset's classes: {sorted(ids)}; {categories_path})")
    return frozenset(ids[c] for c in scheme["categories"])


def run(config: dict, annotations_path: str | Path, out: str | Path, table_dir: str | Path) -> dict:
    """Every scheme's decision on every candidate annotation, and the share each drops. The
    classes of `categories` schemes are read from the ingest tables beside the annotations."""
    anns = sorted(pq.read_table(annotations_path).to_pylist(), key=lambda a: a["ann_id"])
    candidates = [a for a in anns if a["labelled"] and not a["iscrowd"]]
    rows, stats = [], []
    for name, scheme in config["drops"].items():
        rng = np.random.default_rng([config["seed"], zlib.crc32(name.encode())])
        chosen = named_categories(scheme, name, Path(annotations_path).parent / "categories.parquet")
        dropped = choose(scheme["kind"], scheme["fraction"], candidates, rng, chosen)
        rows += [{"scheme": name, "ann_id": a["ann_id"], "image_id": a["image_id"], "dropped": a["ann_id"] in dropped} for a in candidates]
        stats.append({"scheme": name, "kind": scheme["kind"], "annotations": len(candidates), "dropped": len(dropped),
                      "dropped_percent": round(100.0 * len(dropped) / max(1, len(candidates)), 2)})
    write_parquet(out, pa.Table.from_pylist(rows, schema=DROPS_SCHEMA))
    table = pd.DataFrame(stats)
    write_table(table, Path(table_dir) / "drop_statistics")
    return {s["scheme"]: s["dropped_percent"] for s in stats}


def dropped_ids(path: str | Path) -> dict[str, set[int]]:
    """scheme -> ann_ids it drops."""
    out: dict[str, set[int]] = defaultdict(set)
    for r in pq.read_table(path).to_pylist():
        if r["dropped"]:
            out[r["scheme"]].add(r["ann_id"])
    return out
