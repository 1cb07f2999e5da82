"""Shared fixtures: paths to the real datasets, small generated images, config helpers."""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
COCO128 = SHARED / "coco128"
RACCOON = SHARED / "raccoon"
VENV_BIN = Path(sys.executable).parent

sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))  # planning.jobs_per_rule: one parser of Snakemake's job table


INGEST_MEMORY = 512 * 2**20  # what an ingest test may allocate beyond what the test process holds


@contextlib.contextmanager
def memory_limit(extra_bytes: int = INGEST_MEMORY):
    """Cap the process's data segment (heap and anonymous maps: RLIMIT_DATA) at what it holds now
    plus `extra_bytes` while the block runs, so an input that makes a library allocate in
    proportion to a number in it (a polygon at 1e7 took 894 MB, an unbounded one 22.7 GB) fails the
    test instead of the machine. It bounds growth: freed heap the process still holds is reusable."""
    held = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmData:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (held + extra_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def pytest_collection_modifyitems(config, items):
    """SLURM tests last: they install SLURM's client tools and stop their cluster at the end
    (see run_env for what a stopped cluster costs every Snakemake start). The suite runs in one
    process: measured with two pytest-xdist workers it took 38 minutes instead of 33, as its
    long tests already keep both cores busy and two of them at once fight over them."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)


def built_once_weights_are_placed(build, settings: dict, hub: Path, file_name: str, reference):
    """With `weights: torchvision`, building fails naming `file_name` and the hub folder (a test
    points torch.hub there) until the file is placed, the offline stand-in for a download; then
    it builds from `reference`'s state dict. Returns that model."""
    import torch

    from bgshift.weights import WeightsMissing

    with pytest.raises(WeightsMissing, match=rf"place {re.escape(file_name)} .* at .*hub/checkpoints"):
        build(settings, num_classes=3)
    cache = hub / "checkpoints" / file_name
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), cache)
    return build(settings, num_classes=3)


def assert_reloads_from_own_checkpoint(build, settings: dict, model, folder: Path) -> None:
    """A model saved as our checkpoints are ({"model": state dict, ...}) under resources/weights/
    and named by `weights:` builds with exactly the same tensors."""
    import torch

    own = folder / "resources" / "weights" / "own.pt"
    own.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "iteration": 3}, own)
    again = build({**settings, "weights": str(own)}, num_classes=3).state_dict()
    assert all(torch.equal(again[k], v) for k, v in model.state_dict().items())


def needs(path: Path):
    return pytest.mark.skipif(not path.is_dir(), reason=f"real dataset {path} is absent")


def gradient_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A deterministic RGB test picture with structure in both axes (so rotations are visible)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + 2 * y) % 256], -1)
    img = img + rng.integers(0, 20, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def save_jpeg(path: Path, rgb: np.ndarray, exif_orientation: int | None = None, quality: int = 95) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(rgb)
    kwargs = {"quality": quality}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    im.save(path, "JPEG", **kwargs)
    return path


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def digest(folder: Path, pattern: str = "*", skip=lambda relative: False) -> dict[str, str]:
    """sha256 of every file under `folder` matching `pattern`, by relative path (for byte-identity checks)."""
    return {relative.as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob(pattern)) if p.is_file() and not skip(relative := p.relative_to(folder))}


def ultralytics_cache(relative: Path) -> bool:
    """ultralytics writes label caches (*.cache) beside the YOLO labels it has read."""
    return relative.suffix == ".cache"


def run_env(slurm: bool = False) -> dict:
    """Environment in which `bgshift` and `snakemake` from this venv are on PATH.

    Where SLURM's client tools are installed but no controller answers (any machine after the
    SLURM tests stopped their cluster), every Snakemake start waits ~10 s: the SLURM executor
    plugin probes `scontrol show config` when it is imported. Tests that do not use SLURM
    therefore find a stand-in `scontrol` that fails at once; the SLURM tests get the real one.
    """
    env = dict(os.environ)
    stand_in = "" if slurm else f"{_failing_scontrol()}{os.pathsep}"
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{stand_in}{env.get('PATH', '')}"
    return env


def _failing_scontrol() -> Path:
    folder = Path(tempfile.gettempdir()) / f"bgshift-tests-no-slurm-{os.getuid()}"
    stub = folder / "scontrol"
    if not stub.is_file():  # written whole, then renamed: the other test worker may look at the same time
        folder.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder)
        with os.fdopen(fd, "w") as fh:
            fh.write("#!/bin/sh\nexit 1\n")
        os.chmod(tmp, 0o755)
        os.replace(tmp, stub)
    return folder


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow (workflow/: Snakefile, rules, schema, package; config, profiles) to run in isolation."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("workflow", "config", "profiles"):
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / item)
    (dest / "resources").mkdir(exist_ok=True)
    if (REPO / "resources" / "backgrounds").is_dir():
        shutil.copytree(REPO / "resources" / "backgrounds", dest / "resources" / "backgrounds")
    return dest


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The whole demo pipeline, run once by Snakemake for every test that inspects it."""
    workdir = copy_workflow(tmp_path_factory.mktemp("demo"))
    proc = snakemake(workdir, timeout=1800)  # about 8 minutes on 2 idle cores
    return workdir, proc


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900, slurm: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(VENV_BIN / "snakemake"), "--cores", "2", "--directory", str(workdir), "--snakefile",
           str(workdir / "workflow" / "Snakefile"), *args]
    proc = subprocess.run(cmd, cwd=workdir, env=run_env(slurm), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str, slurm: bool = False) -> dict[str, int]:
    """Rule -> job count of a dry run in `workdir` ({} when nothing is left to do)."""
    from planning import jobs_per_rule

    return jobs_per_rule(snakemake(workdir, "-n", *args, "--quiet", "rules", slurm=slurm).stdout)


def run_stages(cfg: dict, root: Path) -> dict:
    """ingest -> splits, drops -> segment -> variants -> every set's export, in-process, one shard,
    laid out as the workflow lays out results/ (so accounting.build can read it)."""
    from bgshift import drops, export, ingest, segment, sets, splits
    from bgshift.variants import engine, manifest

    cfg = {**cfg, "shard_size": 10**6}
    ingest.run(cfg, root / "ingest")
    splits.run(cfg, root / "ingest" / "images.parquet", root / "splits" / "splits.parquet")
    drops.run(cfg, root / "ingest" / "annotations.parquet", root / "drops" / "drops.parquet", root / "tables")
    seg = root / "segment"
    segment.run_shard(cfg, root / "ingest", 0, seg / "0.parquet", seg / "stats.parquet")
    segment.summarise([seg / "0.parquet"], [seg / "stats.parquet"], root / "ingest" / "categories.parquet",
                      root / "ingest" / "annotations.parquet", seg, root / "tables")
    engine.run_shard(cfg, root / "ingest", seg / "0.parquet", 0, seg / "summary.json", seg / "mean_background.png",
                     root / "variants", root / "variants" / "shards" / "00000.json", root / "drops" / "drops.parquet",
                     root / "splits" / "splits.parquet")
    manifest.combine([root / "variants" / "shards" / "00000.json"], root / "variants" / "manifest.json")
    return {name: export.export(definition, cfg["sets"]["part_rows"], cfg["sets"]["yolo_polygons"], root / "variants" / "manifest.json",
                              root / "splits" / "splits.parquet", root / "drops" / "drops.parquet",
                              root / "ingest" / "categories.parquet", root / "sets" / name)
            for name, definition in sets.definitions(cfg).items()}
