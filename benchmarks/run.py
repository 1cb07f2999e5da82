"""`make bench`: performance figures (one module per bench, `<name>_bench.py`; common.py their shared worlds), each printed as a ratio against a floor or baseline
measured in the same run on the same data (never absolute timings alone).

    python benchmarks/run.py [findings|planning|variants|segment|train|evaluate|memory|shard_reads ...] [--sizes 640x480,1920x1080]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate_bench import bench_evaluate  # noqa: E402
from findings_bench import bench_findings  # noqa: E402
from memory_bench import bench_memory  # noqa: E402
from planning_bench import bench_planning  # noqa: E402
from segment_bench import bench_segment  # noqa: E402
from segment_model_bench import bench_segment_model  # noqa: E402
from shard_reads_bench import bench_shard_reads  # noqa: E402
from train_bench import bench_train  # noqa: E402
from variants_bench import bench_variants  # noqa: E402

BENCHES = {"findings": bench_findings, "planning": bench_planning, "variants": bench_variants, "segment": bench_segment, "train": bench_train, "evaluate": bench_evaluate, "memory": bench_memory, "segment_model": bench_segment_model,
           "shard_reads": bench_shard_reads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benches", nargs="*", metavar="bench", help=f"which to run (default all): {', '.join(BENCHES)}")
    parser.add_argument("--sizes", default="640x480,1280x720,1920x1080", help="image sizes of the variant bench, WxH,WxH")
    parser.add_argument("--shard-images", type=int, default=24, help="images in the variant bench's shard (the pipeline's default shard: 64)")
    parser.add_argument("--world-shards", type=int, default=1, help="shards in the variant bench's world (donors from other shards beyond 1)")
    args = parser.parse_args()
    if set(args.benches) - set(BENCHES):
        parser.error(f"unknown bench {sorted(set(args.benches) - set(BENCHES))}; choose from {list(BENCHES)}")
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    for name in args.benches or list(BENCHES):
        BENCHES[name](sizes, args.shard_images, args.world_shards) if name == "variants" else BENCHES[name]()


if __name__ == "__main__":
    main()
