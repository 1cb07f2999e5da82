"""Which image lends its background to which, for the mixed_* variants (Xiao et al.'s Mixed-Same,
Mixed-Rand, Mixed-Next): planned once for the whole dataset, so every shard job agrees."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def main_classes(ingest_dir: str | Path) -> dict[int, int]:
    """The class each image is 'of' for mixed_* donors: its largest labelled object's (ties:
    the lowest annotation id). Images without a labelled object are absent. Read column-wise:
    every variants job needs it for the whole dataset."""
    table = pq.read_table(Path(ingest_dir) / "annotations.parquet", columns=["image_id", "ann_id", "category_id", "area", "labelled"])
    labelled = table.filter(table["labelled"])
    image, ann, category, area = (labelled[c].to_numpy() for c in ("image_id", "ann_id", "category_id", "area"))
    order = np.lexsort((ann, -area, image))  # per image: largest area first, then lowest id
    first = order[np.r_[True, image[order][1:] != image[order][:-1]]] if order.size else order
    return dict(zip(image[first].tolist(), category[first].tolist()))


def plan_donors(classes: dict[int, int], eligible: list[int], seed: int, split_of: dict[int, str] | None = None) -> dict[str, dict[int, int]]:
    """Donor image per (mixed family, image), for the whole dataset at once.

    Donors come from the image's own split (`split_of`), so no training image sits on a test
    image's background or the other way round. Within a split each pool is shuffled into a
    cycle and every image takes the next member, so donors are drawn without replacement (each
    image donates once per family) and never donate to themselves unless alone in their pool.
    mixed_same falls back to a random donor for a class with a single image (its donor class
    then differs).
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i in eligible:
        groups[split_of.get(i, "") if split_of is not None else ""].append(i)
    plan: dict[str, dict[int, int]] = {"mixed_same": {}, "mixed_rand": {}, "mixed_next": {}}
    for k, split in enumerate(sorted(groups)):
        rng = np.random.default_rng([seed, 7919] if split_of is None else [seed, 7919, k])
        for family, donors in _plan_pool({i: classes.get(i) for i in groups[split]}, groups[split], rng).items():
            plan[family].update(donors)
    return plan


def _plan_pool(cls: dict[int, int | None], eligible: list[int], rng: np.random.Generator) -> dict[str, dict[int, int]]:
    """plan_donors within one pool of images."""
    by_class: dict[int, list[int]] = defaultdict(list)
    for i in eligible:
        if cls[i] is not None:
            by_class[cls[i]].append(i)

    def cycle(members: list[int]) -> dict[int, int]:
        order = [members[j] for j in rng.permutation(len(members))]
        return {order[j]: order[(j + 1) % len(order)] for j in range(len(order))}

    rand = cycle(eligible) if eligible else {}
    same: dict[int, int] = {}
    for members in by_class.values():
        same.update(cycle(members) if len(members) > 1 else {m: rand[m] for m in members})
    classes = sorted(by_class)
    nxt: dict[int, int] = {}
    for k, c in enumerate(classes):
        target = by_class[classes[(k + 1) % len(classes)]]
        order = [target[j] for j in rng.permutation(len(target))]
        for j, member in enumerate(by_class[c]):
            nxt[member] = order[j % len(order)]
    for i in eligible:  # images without a labelled object have no class: a random donor
        same.setdefault(i, rand[i])
        nxt.setdefault(i, rand[i])
    return {"mixed_same": same, "mixed_rand": rand, "mixed_next": nxt}
