"""Planning the study grid at COCO scale: how long Snakemake takes to build the job graph.

A fake COCO json (image records and annotations, no image files: a dry run reads none)
stands in for VOC- and COCO-sized inputs; `config/examples/study_grid_coco.yaml` is the
grid. The floor is a one-rule Snakefile's dry run, measured in the same loop.
"""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GRID = REPO / "config" / "examples" / "study_grid_coco.yaml"
ANNOTATIONS_PER_IMAGE = 7  # COCO train2017: 860,001 annotations on 118,287 images


def fake_coco(path: Path, n_images: int, seed: int = 0) -> Path:
    """A COCO instances json shaped like train2017 (80 classes, ~7 polygon annotations per image)."""
    rng = random.Random(seed)
    images, annotations = [], []
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": 640, "height": 480})
        for _ in range(ANNOTATIONS_PER_IMAGE):
            x, y, w, h = rng.randint(0, 500), rng.randint(0, 350), rng.randint(8, 140), rng.randint(8, 130)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": rng.randint(1, 80),
                                "bbox": [x, y, w, h], "area": w * h * 0.7, "iscrowd": 0,
                                "segmentation": [[x, y, x + w, y, x + w, y + h, x + w // 2, y + h, x, y + h]]})
    categories = [{"id": i, "name": f"class{i}", "supercategory": "thing"} for i in range(1, 81)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def grid_config(root: Path, annotations: Path) -> Path:
    """The study grid pointed at a fake COCO json; images are never read by a dry run."""
    config = yaml.safe_load(GRID.read_text())
    (root / "images").mkdir(parents=True, exist_ok=True)
    config["dataset"] = {"kind": "coco", "images": str(root / "images"), "annotations": str(annotations)}
    config["results"] = f"results/planning/{annotations.stem}"
    path = root / f"{annotations.stem}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def floor_snakefile(root: Path) -> Path:
    """One rule, one job: what any Snakemake start costs (imports, parsing, DAG of one)."""
    path = root / "Snakefile.floor"
    path.write_text('rule all:\n    output: "floor.txt"\n    shell: "touch {output}"\n')
    return path


def dry_run(*args: str, cwd: Path) -> tuple[float, float, dict[str, int]]:
    """(seconds, peak MiB, jobs per rule) of `snakemake -n` in a fresh process."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "snakemake", "-n", "--quiet", "rules", "--cores", "1", *args],
                          cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dry run failed ({' '.join(args)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    seconds, kib = proc.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) / 1024, jobs_per_rule(proc.stdout)


def jobs_per_rule(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: jobs} ('total' left out; {} when nothing is planned)."""
    if "Job stats:" not in stdout:
        return {}
    table = stdout.split("Job stats:", 1)[1].split("Reasons:", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


def plan_grid(root: Path, n_images: int) -> tuple[float, float, dict[str, int]]:
    """Dry run of the study grid on n_images fake COCO images (workflow of this repository)."""
    config = grid_config(root, fake_coco(root / f"coco_{n_images}.json", n_images))
    return dry_run("--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory", str(REPO), "--configfile", str(config), cwd=REPO)
