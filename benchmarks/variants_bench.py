"""The variant stage against a floor of decoding and encoding the same images (ms per image)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bgshift import images
from bgshift.ingest import tables
from common import best_of, demo_world, segment_world


def bench_variants(sizes: list[tuple[int, int]], n: int = 24, world_shards: int = 1) -> None:
    """The variant stage (the whole shard job of `n` images) against its codec floor, at each image
    size. Donor reuse and the writer's per-file cost depend on `n`; in a world of one shard every
    donor is one of the job's own images, in a larger one most come from other shards, as at
    scale (docs/benchmarks.md)."""
    from bgshift.variants import engine, expand

    for width, height in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            cfg = demo_world(root, n, width, height, shards=world_shards)
            seg = segment_world(cfg, root, world_shards)
            specs = expand(cfg["variants"])
            k, quality = len(specs), cfg["variants"]["jpeg_quality"]
            shard_images = tables.shard_image_ids(tables.image_ids(root / "ingest"), 0, n)
            paths = [im["path"] for im in tables.Dataset.load(root / "ingest", shard_images).images]

            def floor():  # the codec work alone, in OpenCV's native channel order
                for path in paths:
                    pixels = images.read_bgr(path)
                    for _ in range(k):
                        images.encode_jpeg_bgr(pixels, quality)

            def decode():  # one decode of each image: what each donor from another shard adds
                for path in paths:
                    images.read_bgr(path)

            jobs = []

            def stage():  # into a new folder, as a pipeline job writes (Snakemake removed any old one before)
                jobs.append(engine.ShardJob(cfg, root / "ingest", seg / "0.parquet", 0,
                                            seg / "summary.json", seg / "mean_background.png", root / "drops.parquet"))
                jobs[-1].run(root / "out" / "00000")

            t_floor, t_stage, t_decode = best_of(floor, stage, decode, rounds=5 if width * height <= 640 * 480 else 3,
                                                 between=lambda: shutil.rmtree(root / "out"))
            decodes, encodes = jobs[-1].decoded.loads, jobs[-1].encodes
        per = lambda t: 1000 * t / n  # noqa: E731
        print(f"variants: {k} variants of a {n}-image shard of a {world_shards}-shard world at {width}x{height}, JPEG q{quality}, one process")
        print(f"  floor (decode once + {k} encodes): {per(t_floor):7.1f} ms/image")
        print(f"  variant stage (whole shard job):   {per(t_stage):7.1f} ms/image")
        print(f"  images decoded (sources, donors):  {decodes / n:7.2f} per image (the floor: 1)")
        print(f"  JPEG encodes (equal pixels once):  {encodes / n:7.2f} per image (the floor: {k})")
        print(f"  ratio stage/floor: {t_stage / t_floor:.2f}x (target <= 1.30x)")
        if decodes > n:  # donors from other shards: decodes the donor plan demands, which the floor leaves out
            with_donors = t_floor + (decodes / n - 1) * t_decode
            print(f"  ratio stage/(floor + the donors' {decodes / n - 1:.2f} decodes an image): {t_stage / with_donors:.2f}x")
