"""What made a run's results: the code version, the versions of the libraries that shaped its
numbers, and the time each stage took (Snakemake's per-rule `benchmark:` files)."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

PACKAGES = ("bgshift", "torch", "torchvision", "ultralytics", "snakemake", "numpy", "pandas", "pyarrow", "opencv-python",
            "faster-coco-eval", "pycocotools", "segmentation-models-pytorch", "scipy")
REPOSITORY = Path(__file__).resolve().parents[3]  # workflow/bgshift/report/ -> the checkout


def code_version() -> str:
    """`git describe` of the checkout the package runs from ('-dirty' with uncommitted changes)."""
    try:
        done = subprocess.run(["git", "-C", str(REPOSITORY), "describe", "--always", "--dirty", "--tags"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return done.stdout.strip() if done.returncode == 0 else "unknown (not a git checkout)"


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def stage_times(benchmarks: Path) -> pd.DataFrame:
    """Per rule: jobs, total and longest wall-clock seconds, peak memory (MiB), from
    `benchmarks/<rule>/<wildcards>.tsv` (a line per job, as Snakemake writes it)."""
    rows = []
    for path in sorted(benchmarks.rglob("*.tsv")) if benchmarks.is_dir() else []:
        table = pd.read_csv(path, sep="\t")
        rows += [{"stage": path.relative_to(benchmarks).parts[0], "s": float(r["s"]), "max_rss": pd.to_numeric(r["max_rss"], errors="coerce")}
                 for r in table.to_dict("records")]
    if not rows:
        return pd.DataFrame(columns=["stage", "jobs", "total s", "longest s", "peak MiB"])
    frame = pd.DataFrame(rows).groupby("stage", sort=True)
    times = pd.DataFrame({"jobs": frame.s.size(), "total s": frame.s.sum().round(1), "longest s": frame.s.max().round(1),
                          "peak MiB": frame.max_rss.max().round(0)})
    return times.sort_values("total s", ascending=False).reset_index()
