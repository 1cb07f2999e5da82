"""The variant shard job: decode each source once, run every variant, encode, write.

Rows stream into one Parquet writer per variant and are written out whenever the
JPEG bytes held reach `group_mb` megabytes, so memory stays bounded however large a
shard or its images are.
"""
from __future__ import annotations

import contextlib
import json
import zlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .. import images as imgs
from .. import masks
from ..io import atomic_dir, parquet_options, rows_table
from ..drops import dropped_ids
from ..progress import progress
from ..ingest.tables import Dataset, image_ids, shard_image_ids
from . import VariantSpec, expand, manifest
from ..splits import load as load_splits
from .donors import main_classes, plan_donors
from .families import DONORS, FAMILIES, MASK_FREE_FAMILIES
from .naming import pictures
from .objects import transform_objects
from .context import Donor, ImageContext, Instance
from .drawing import Canvas, Composite, identity, only_bg_t_background
from .schema import ROW_SCHEMA


class LazyGenerator:
    """A numpy Generator created on first use: most variants draw nothing, and seeding one
    costs ~50 us, paid for every variant of every image."""

    __slots__ = ("_seed", "_generator")

    def __init__(self, seed: list[int]):
        self._seed, self._generator = seed, None

    def __getattr__(self, name: str):
        if self._generator is None:
            self._generator = np.random.default_rng(self._seed)
        return getattr(self._generator, name)


def variant_rng(seed: int, image_id: int, name: str) -> LazyGenerator:
    """A generator per (seed, image, variant): stable across runs, shards and processes."""
    return LazyGenerator([seed, image_id, zlib.crc32(name.encode())])


@dataclass
class Decoded:
    """One decoded image of a job: its pixels (read-only, shared) and, once it has donated,
    its Only-BG-T background."""

    pixels: np.ndarray
    donor: Donor | None = None


class PlannedCache:
    """Values a job asks for in an order known in advance (each image, then its donors),
    each loaded once while it has a use left. Full, it drops the one asked for again last
    (Belady's rule, optimal for a known sequence); a value with no use left is not kept."""

    def __init__(self, requests: Iterable[int], capacity: int, load: Callable[[int], object]):
        self.uses: dict[int, deque[int]] = defaultdict(deque)
        for position, key in enumerate(requests):
            self.uses[key].append(position)
        self.capacity, self.load = capacity, load
        self.kept: dict[int, object] = {}
        self.loads = 0

    def __call__(self, key: int):
        value = self.kept.pop(key, None)
        if value is None:
            value, self.loads = self.load(key), self.loads + 1
        uses = self.uses.get(key)
        if uses:
            uses.popleft()
        if uses:
            self.kept[key] = value
            if len(self.kept) > self.capacity:
                del self.kept[max(self.kept, key=lambda k: self.uses[k][0])]
        return value


class ShardJob:
    def __init__(self, config: dict, ingest_dir: str | Path, segment_shard: str | Path,
                 shard: int, background_summary: str | Path, mean_background: str | Path, drops: str | Path | None = None,
                 splits: str | Path | None = None):
        self.seed = config["seed"]
        self.settings = config["variants"]
        self.specs = expand(self.settings)
        every_image = image_ids(ingest_dir)
        self.shard_images = shard_image_ids(every_image, shard, config["shard_size"])
        self.segments = {r["image_id"]: r for r in pq.read_table(segment_shard).to_pylist()}
        summary = json.loads(Path(background_summary).read_text())
        # Donors come from every shard: the QC-passed images are the ingested ones less the
        # segment summary's failures (one small file, not every shard's masks).
        if summary["images"] != len(every_image):
            raise ValueError(f"{background_summary}: segmented {summary['images']} images, ingest has {len(every_image)}: rerun segment")
        if any("decoded" not in f for f in summary["qc_failed"]):
            raise ValueError(f"{background_summary}: written by an older bgshift (QC failures without 'decoded'): "
                             "rerun segment (snakemake --forcerun segment)")
        failed = {f["image_id"] for f in summary["qc_failed"]}
        self.eligible = [i for i in every_image if i not in failed]  # donors: QC-passed images
        self.classes: dict[int, int] = {}
        self.donors: dict[str, dict[int, int]] = {}
        if any(DONORS in FAMILIES[s.family].needs for s in self.specs):
            self.classes = main_classes(ingest_dir)
            self.donors = plan_donors(self.classes, self.eligible, self.seed, load_splits(splits) if splits else None)
        # only this shard's images and their donors are read into Python
        donors = {plan[i] for plan in self.donors.values() for i in self.shard_images if i in plan}
        self.dataset = Dataset.load(ingest_dir, set(self.shard_images) | donors)
        self.images = {im["image_id"]: im for im in self.dataset.images}
        self.category_index = {cid: c["index"] for cid, c in self.dataset.categories.items()}
        self.category_name = {cid: c["name"] for cid, c in self.dataset.categories.items()}
        self.mean_colour = np.array(summary["background_mean_rgb"], np.float64)
        self.mean_image = imgs.read_bgr(mean_background)
        self.scenes = {name: imgs.read_bgr(path) for name, path in pictures(s.params for s in self.specs).items()}
        self.fit_cache: dict = {}
        self.dropped = dropped_ids(drops) if drops else {}
        needed = {s.params["drop"] for s in self.specs if s.params.get("drop")}
        if needed and not drops:
            raise ValueError(f"variants mask after drop schemes {sorted(needed)}: the drops table is required")
        # A donor is often a source of this shard too, or donates to several of its images
        # (once per mixed family): each is decoded once while a later image still needs it.
        # Every image that decodes is made: a QC-failed one in the mask-free variants only.
        self.todo = [i for i in self.shard_images if self.segments.get(i, {}).get("decoded")]
        self.mask_free = [s for s in self.specs if s.family in MASK_FREE_FAMILIES]
        requests = [j for i in self.todo for j in (i, *(plan[i] for plan in self.donors.values() if i in plan))]
        self.decoded = PlannedCache(requests, self.settings["donor_cache"], self._decode)
        self.canvas = Canvas()  # every composite is encoded before the next is drawn
        self.encodes = 0

    def _decode(self, image_id: int) -> Decoded:
        pixels = imgs.read_bgr(self.images[image_id]["path"])
        pixels.flags.writeable = False  # shared by the image's own variants and its recipients'
        return Decoded(pixels)

    def donor(self, image_id: int) -> Donor:
        """A donor's Only-BG-T background (its boxes filled by its own tiled strip, the rest
        its real background), as Xiao et al.'s Mixed-* variants take it."""
        decoded = self.decoded(image_id)
        if decoded.donor is None:
            bboxes = [a["bbox"] for a in self.dataset.annotations.get(image_id, [])]
            decoded.donor = Donor(image_id, self.category_name.get(self.classes.get(image_id), ""),
                                  only_bg_t_background(decoded.pixels, bboxes, self.mean_colour))
        return decoded.donor

    def context(self, image_id: int) -> ImageContext:
        seg = self.segments[image_id]
        anns = {a["ann_id"]: a for a in self.dataset.annotations.get(image_id, [])}
        instances = [self.instance(anns[inst["ann_id"]], inst["segmentation"]) for inst in seg["instances"]]
        ctx = ImageContext(image_id, self.decoded(image_id).pixels, instances,
                           np.ascontiguousarray(masks.decode(seg["foreground"])), self.mean_colour, self.mean_image, scenes=self.scenes,
                           fit_cache=self.fit_cache, dropped=self.dropped)
        ctx.donors = {family: self.donor(plan[image_id]) for family, plan in self.donors.items() if image_id in plan}
        return ctx

    @staticmethod
    def instance(annotation: dict, rle: dict | None) -> Instance:
        """An annotated object with its segment-stage mask; without one (a QC-failed image) its
        box stands for its area, as COCO's area of a box-only object."""
        a = annotation
        if rle is None:
            empty = (slice(0, 0), slice(0, 0))
            return Instance(a["ann_id"], a["category_id"], a["bbox"], a["iscrowd"], a["labelled"], None, None,
                            float(a["bbox"][2] * a["bbox"][3]), empty)
        return Instance(a["ann_id"], a["category_id"], a["bbox"], a["iscrowd"], a["labelled"], masks.decode(rle),
                        rle, float(masks.area(rle)), masks.region(rle))

    def rows(self, image_id: int):
        """(variant name, row) for every variant of one image; pixels that an earlier
        variant of the image already had are not encoded again (same pixels, same bytes)."""
        ctx = self.context(image_id)
        seg = self.segments[image_id]
        encoded: dict[tuple, tuple[bytes, object]] = {}
        for spec in self.specs if seg["qc_pass"] else self.mask_free:
            result = FAMILIES[spec.family].draw(ctx, spec.params, variant_rng(self.seed, image_id, spec.name))
            image = result.image
            key, keep = identity(image) or (None, None)
            if key in encoded:
                data = encoded[key][0]
            else:
                pixels = self.canvas.draw(image) if isinstance(image, Composite) else image
                data = imgs.encode_jpeg_bgr(pixels, self.settings["jpeg_quality"])
                self.encodes += 1
                if key is not None:
                    encoded[key] = (data, keep)
            h, w = image.shape[:2]
            yield spec.name, {
                "image": {"bytes": data, "path": f"{spec.name}/{image_id}.jpg"},
                "image_id": image_id,
                "variant": spec.name,
                "family": spec.family,
                "width": w,
                "height": h,
                "background_only": result.objects == "none",
                "objects": transform_objects(result, ctx, self.category_index),
                "donor_id": result.donor.image_id if result.donor else None,
                "donor_class": result.donor.category if result.donor else None,
                "background": result.background,
                "mask_source": seg["mask_source"],
                "mask_qc": seg["qc_pass"],
                "seed": self.seed,
            }

    def run(self, shard_dir: str | Path) -> dict:
        """Write shard_dir/{variant}.parquet for every variant (the folder appears whole or not at all); returns counts."""
        budget = self.settings["group_mb"] * 2**20
        options = parquet_options(ROW_SCHEMA, ("image",), codec=None)
        with atomic_dir(shard_dir) as tmp, contextlib.ExitStack() as writers_open:
            writers = {spec.name: writers_open.enter_context(pq.ParquetWriter(tmp / f"{spec.name}.parquet", ROW_SCHEMA, **options))
                       for spec in self.specs}
            pending: dict[str, list[dict]] = defaultdict(list)
            held = 0  # JPEG bytes waiting in `pending`
            for n, image_id in enumerate(progress(self.todo, desc="variants", unit="image"), start=1):
                for name, row in self.rows(image_id):
                    pending[name].append(row)
                    held += len(row["image"]["bytes"])
                if held >= budget or n == len(self.todo):  # a row group in every variant's file
                    for name, rows in pending.items():
                        writers[name].write_table(rows_table(rows, ROW_SCHEMA, ("image",)))
                    pending.clear()
                    held = 0
        passed = sum(bool(self.segments[i]["qc_pass"]) for i in self.todo)
        return {"images": passed, "mask_free_only": len(self.todo) - passed,
                "undecodable": len(self.shard_images) - len(self.todo), "variants": len(self.specs)}


def run_shard(config: dict, ingest_dir, segment_shard, shard: int, background_summary, mean_background, variants_dir,
              record, drops=None, splits=None) -> dict:
    """Every variant of one shard into variants_dir/shards/{shard}/{variant}.parquet, then the shard's manifest record;
    mixed_* donors from each image's own split when `splits` is given (the workflow always gives it)."""
    job = ShardJob(config, ingest_dir, segment_shard, shard, background_summary, mean_background, drops, splits)
    name = f"{shard:05d}"
    counts = job.run(Path(variants_dir) / manifest.shard_folder(name))
    manifest.write_shard(record, name, [s.name for s in job.specs], counts)
    return counts


def variant_names(config: dict) -> list[str]:
    return [s.name for s in expand(config["variants"])]


__all__ = ["run_shard", "variant_names", "plan_donors", "VariantSpec"]
