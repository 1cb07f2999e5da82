"""Planning time of the study grid against a one-rule Snakefile's dry run."""
from __future__ import annotations

import tempfile
from pathlib import Path

from common import REPO


def bench_planning() -> None:
    """Dry runs of the study grid (config/examples/study_grid_coco.yaml: 42 variants, 36 sets,
    162 training runs, 64 images a shard) on fake COCO jsons of VOC to COCO size, against a
    one-rule Snakefile's dry run in the same loop (best of 2 each, interleaved)."""
    import planning

    sizes = (11_500, 23_000, 46_000, 118_287)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        configs = {n: planning.grid_config(root, planning.fake_coco(root / f"coco_{n}.json", n)) for n in sizes}
        floor_file = planning.floor_snakefile(root)
        floors, runs = [], {n: [] for n in sizes}
        for _ in range(2):
            floors.append(planning.dry_run("--snakefile", str(floor_file), cwd=root)[0])
            for n, config in configs.items():
                runs[n].append(planning.dry_run("--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory", str(REPO),
                                                "--configfile", str(config), cwd=REPO))
    floor = min(floors)
    measured = {n: (min(r[0] for r in rs), max(r[1] for r in rs), sum(rs[0][2].values())) for n, rs in runs.items()}
    print(f"planning: dry run of the study grid vs a one-rule Snakefile ({floor:.2f} s), fake COCO json, 64 images a shard")
    previous = None
    for n in sizes:
        seconds, peak, jobs = measured[n]
        growth = "" if previous is None else f"; {1000 * (seconds - previous[0]) / (jobs - previous[1]):.2f} ms per added job"
        print(f"  {n:>7,} images: {jobs:5,} jobs, {seconds:5.2f} s = {seconds / floor:4.1f}x floor, peak {peak:5.0f} MiB{growth}")
        previous = (seconds, jobs)
