"""What the variant stage wrote: one small record per shard job, combined into one manifest.

Rules that read every variant of every shard (export, accounting) take the manifest as
their input instead of listing each variant x shard file: at COCO scale with 42 variants
that is 77,658 files, and Snakemake's planning time grew with the square of the input
size while every export job listed them (docs/benchmarks.md). Readers also get exactly
the files of this run's shards, never a stale shard left by an earlier, larger dataset.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..io import write_json


def shard_folder(shard: str) -> str:
    """Where one shard job writes its variants, relative to the variants folder: one folder
    per job, not one output file per variant, keeps the job graph small at COCO scale."""
    return f"shards/{shard}"


def write_shard(path: str | Path, shard: str, variants: list[str], counts: dict) -> None:
    """The record of one finished shard job: its variant files (relative to the variants folder) and counts."""
    write_json(path, {"shard": shard, "files": {v: f"{shard_folder(shard)}/{v}.parquet" for v in variants}, **counts})


def combine(shard_records: list[str | Path], out: str | Path) -> dict:
    """One manifest of every shard, in shard order: {variant: [file, ...]} and the image counts."""
    records = sorted((json.loads(Path(p).read_text()) for p in shard_records), key=lambda r: r["shard"])
    if not records:
        raise ValueError("variant manifest: no shard records given")
    names = list(records[0]["files"])
    for record in records:
        if list(record["files"]) != names:
            raise ValueError(f"variant manifest: shard {record['shard']} lists variants {list(record['files'])}, "
                             f"shard {records[0]['shard']} lists {names}: rerun the variants stage")
    manifest = {"shards": [r["shard"] for r in records],
                **{key: sum(r[key] for r in records) for key in ("images", "mask_free_only", "undecodable")},
                "files": {v: [r["files"][v] for r in records] for v in names}}
    write_json(out, manifest)
    return manifest


def variant_files(manifest_path: str | Path, variants) -> dict[str, list[Path]]:
    """The shard files of each named variant, in shard order, as paths beside the manifest."""
    manifest_path = Path(manifest_path)
    files = json.loads(manifest_path.read_text())["files"]
    missing = [v for v in variants if v not in files]
    if missing:
        raise KeyError(f"{manifest_path}: no variant {missing} (variants made: {sorted(files)})")
    return {v: [manifest_path.parent / f for f in files[v]] for v in variants}
