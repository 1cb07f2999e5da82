"""Peak memory of the data stages as the world grows."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bgshift import config, segment
from common import demo_world, peak_memory, segment_world


def _stage_peak(stage: str, root: str) -> tuple[float, float]:
    """(resident MiB before, peak resident MiB while) one stage runs, in this fresh process,
    sampled every 2 ms (getrusage's high-water mark would include the process start)."""
    from bgshift.variants import engine

    root_path, seg = Path(root), Path(root) / "seg"
    cfg = config.validate(json.loads((root_path / "config.json").read_text()))
    with peak_memory() as measured:
        if stage == "segment":
            out = root_path / "seg2"
            segment.run_shard(cfg, root_path / "ingest", 0, out / "0.parquet", out / "stats.parquet")
        else:
            engine.run_shard(cfg, root_path / "ingest", seg / "0.parquet", 0, seg / "summary.json", seg / "mean_background.png",
                             root_path / "variants", root_path / "variants" / "00000.json", root_path / "drops.parquet")
    return measured[0], measured[1]


def bench_memory() -> None:
    """Peak memory of the segmentation and variant stages as one shard grows 10x. Rows are
    streamed (one batch of decoded images at a time), so what grows is per-image metadata
    (masks as RLE), not pixels: compare the growth per added image with the decoded
    variants of one image, which a job holding its shard's images would add."""
    import multiprocessing

    from bgshift.variants import expand

    sizes = (48, 480)  # both above the bounded buffers (donor_cache: 32 images; group_mb: below)
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            root = Path(tmp) / str(n)
            cfg = demo_world(root, n, 320, 240)
            cfg["variants"]["group_mb"] = 8  # ~9 images of 34 variants at this size: both shards write several row groups
            (root / "config.json").write_text(json.dumps(cfg))
            segment_world(cfg, root)
            for stage in ("segment", "variants"):
                with multiprocessing.get_context("spawn").Pool(1) as pool:
                    measured[stage, n] = pool.apply(_stage_peak, (stage, str(root)))
        k = len(expand(cfg["variants"]))
    held = 320 * 240 * 3 * (k + 1) / 2**20  # one source image and its k variants, decoded
    print(f"memory: one shard of {sizes[0]} vs {sizes[1]} images at 320x240, {k} variants, a fresh process per stage")
    for stage in ("segment", "variants"):
        (b0, p0), (b1, p1) = measured[stage, sizes[0]], measured[stage, sizes[1]]
        per_image = ((p1 - b1) - (p0 - b0)) / (sizes[1] - sizes[0]) * 1024
        print(f"  {stage:8s} peak above start: {p0 - b0:6.0f} MiB vs {p1 - b1:6.0f} MiB; peak ratio {p1 / p0:.2f}x;"
              f" growth {per_image:5.0f} KiB per added image")
    print(f"  holding decoded images instead would add {held * 1024:.0f} KiB per image"
          f" ({held * (sizes[1] - sizes[0]):.0f} MiB more for the larger shard)")
