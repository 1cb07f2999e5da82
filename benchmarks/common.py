"""What the benches share: a best-of timer and the synthetic worlds they measure on."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from bgshift import config, drops, ingest, segment

REPO = Path(__file__).resolve().parents[1]


def best_of(*fns, rounds: int = 3, between=None) -> list[float]:
    """Fastest time of each function over interleaved rounds (a, b, a, b, ...), so a
    baseline and its contender see the same machine conditions; `between` runs untimed
    after each round (removing what a round wrote)."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
        if between:
            between()
    return best


@contextlib.contextmanager
def peak_memory():
    """[MiB resident before, peak MiB while] the block runs in this process, sampled every 2 ms
    (getrusage's high-water mark would include the process start); filled when the block ends."""
    import threading

    import psutil

    me, done = psutil.Process(), threading.Event()
    measured = [me.memory_info().rss / 2**20, 0.0]

    def sample():
        while not done.is_set():
            measured[1] = max(measured[1], me.memory_info().rss / 2**20)
            done.wait(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield measured
    finally:
        done.set()
        sampler.join()
        measured[1] = max(measured[1], measured[0])


def demo_world(root: Path, n: int, width: int, height: int, method: str = "gt", shards: int = 1) -> dict:
    """A synthetic world of `shards` shards of `n` images each, ingested, with its drops."""
    demo = config.load(REPO / "config" / "config.yaml")
    cfg = config.validate({"seed": 0, "shard_size": n,
                           "dataset": {"kind": "synthetic", "synthetic": {"num_images": n * shards, "width": width, "height": height}},
                           "segment": {"method": method}, "drops": demo["drops"],
                           "variants": {**demo["variants"], "scenes_dir": str(REPO / "resources" / "backgrounds")}})
    ingest.run(cfg, root / "ingest")
    drops.run(cfg, root / "ingest" / "annotations.parquet", root / "drops.parquet", root / "tables")
    return cfg


def segment_world(cfg: dict, root: Path, shards: int = 1) -> Path:
    """Segment every shard of a demo world and summarise them into root/seg, as the pipeline does."""
    seg = root / "seg"
    for shard in range(shards):
        segment.run_shard(cfg, root / "ingest", shard, seg / f"{shard}.parquet", seg / f"{shard}.stats.parquet")
    segment.summarise([seg / f"{shard}.parquet" for shard in range(shards)], [seg / f"{shard}.stats.parquet" for shard in range(shards)],
                      root / "ingest" / "categories.parquet", root / "ingest" / "annotations.parquet", seg, root / "tables")
    return seg
