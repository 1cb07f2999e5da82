"""results/summary.json: every stage's counts, and the checks that they add up.

Nothing may be lost silently. Each input image is ingested or rejected (with a reason
in rejects.parquet); each ingested image gets a split and a segmentation row, which
passes QC or is listed with its reason; every variant holds exactly the QC-passed
images, a mask-free one (original, only_bg_*) every image that decodes; every drop scheme covers the same candidate annotations; and every set's
split holds its images once per variant and repeat. A count that does not add up
stops the run with the stage and the numbers, instead of writing a summary.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from .io import write_json
from .variants import manifest


class AccountingError(ValueError):
    """Counts of two stages disagree: some records were lost or duplicated."""


def _require(checks: list[dict], name: str, left: int, right: int) -> None:
    checks.append({"check": name, "left": int(left), "right": int(right), "ok": int(left) == int(right)})


def _require_some(checks: list[dict], name: str, count: int, why: str) -> None:
    """A stage that keeps nothing fails the run, whatever else adds up."""
    checks.append({"check": f"{name} is not empty", "left": int(count), "right": 0, "ok": int(count) > 0, "why": why})


def build(results: str | Path, variants: list[str], sets: list[str], mask_free: list[str]) -> dict:
    """Read the stage outputs under `results` and return the summary (with its checks).
    `mask_free`: the variants made of every image that decodes (QC failures too), the rest
    hold the QC-passed images."""
    results = Path(results)
    ingest = json.loads((results / "ingest" / "summary.json").read_text())
    images = pq.read_table(results / "ingest" / "images.parquet", columns=["image_id"]).column("image_id").to_pylist()
    splits = pq.read_table(results / "splits" / "splits.parquet", columns=["image_id", "split"]).to_pylist()
    segment = json.loads((results / "segment" / "summary.json").read_text())
    checks: list[dict] = []
    _check_ingest(checks, results, ingest, images)
    split_of = {r["image_id"]: r["split"] for r in splits}
    _require(checks, "splits: images with a split = ingested images", len(set(split_of) & set(images)), len(images))
    _require(checks, "splits: one row per image", len(splits), len(split_of))
    made = _check_segment(checks, segment, images, split_of, needs_masks=set(variants) - set(mask_free))
    variant_rows = _check_variants(checks, results, variants, mask_free, made)
    set_counts = {name: _check_set(checks, results, name, mask_free, made) for name in sets}
    summary = {
        "ingest": {"images": ingest["images"], "annotations": ingest["annotations"], "reject_reasons": ingest["reject_reasons"]},
        "splits": dict(sorted(Counter(split_of.values()).items())),
        "segment": {"images": segment["images"], "qc_passed": segment["qc_passed"], "qc_failed": len(segment["qc_failed"]),
                    "undecodable": sum(not f["decoded"] for f in segment["qc_failed"]), "mask_source": segment["mask_source"]},
        "variants": variant_rows,
        "drops": _drop_counts(checks, results),
        "sets": set_counts,
        "checks": checks,
    }
    failed = [c for c in checks if not c["ok"]]
    if failed:
        raise AccountingError("counts do not add up:\n" + "\n".join(
            f"  {c['check']}: {c['why']}" if "why" in c else f"  {c['check']}: {c['left']} != {c['right']}" for c in failed))
    return summary


def _check_ingest(checks: list[dict], results: Path, ingest: dict, images: list[int]) -> None:
    rejects = pq.read_table(results / "ingest" / "rejects.parquet", columns=["kind"]).column("kind").to_pylist()
    im, an = ingest["images"], ingest["annotations"]
    _require(checks, "ingest: input images = ingested + rejected", im["input"], im["ingested"] + im["rejected"])
    _require(checks, "ingest: input annotations = ingested + rejected", an["input"], an["ingested"] + an["rejected"])
    _require(checks, "ingest: rejected images = image rows in rejects.parquet", im["rejected"], rejects.count("image"))
    _require(checks, "ingest: rejected annotations = annotation rows in rejects.parquet", an["rejected"], rejects.count("annotation"))
    _require(checks, "ingest: images.parquet rows = ingested images", len(images), im["ingested"])
    _require_some(checks, "ingest: images", len(images), "every image was rejected: see ingest/rejects.parquet")


def _check_segment(checks: list[dict], segment: dict, images: list[int], split_of: dict[int, str],
                   needs_masks: set[str]) -> dict[str, Counter]:
    """The images each kind of variant is made of, per split: 'masked' (QC-passed) and
    'mask_free' (every image that decodes)."""
    failed = {f["image_id"]: f["decoded"] for f in segment["qc_failed"]}
    _require(checks, "segment: rows = ingested images", segment["images"], len(images))
    _require(checks, "segment: QC passed + failed = rows", segment["qc_passed"] + len(failed), segment["images"])
    if needs_masks:
        _require_some(checks, "segment: QC-passed images", segment["qc_passed"],
                      "every image failed segmentation QC: see segment/summary.json (qc_failed) and segment.qc")
    return {"masked": Counter(split_of[i] for i in images if i not in failed),
            "mask_free": Counter(split_of[i] for i in images if failed.get(i, True))}


def _check_variants(checks: list[dict], results: Path, variants: list[str], mask_free: list[str],
                    made: dict[str, Counter]) -> dict[str, int]:
    rows = {}
    for name, shards in manifest.variant_files(results / "variants" / "manifest.json", variants).items():
        rows[name] = sum(pq.read_metadata(p).num_rows for p in shards)
        if name in mask_free:
            _require(checks, f"variants: {name} rows = images that decode", rows[name], sum(made["mask_free"].values()))
        else:
            _require(checks, f"variants: {name} rows = QC-passed images", rows[name], sum(made["masked"].values()))
    return rows


def _drop_counts(checks: list[dict], results: Path) -> dict[str, dict]:
    drops = pq.read_table(results / "drops" / "drops.parquet", columns=["scheme", "dropped"])
    counts = {}
    for scheme in sorted(set(drops.column("scheme").to_pylist())):
        rows = drops.filter(pc.equal(drops.column("scheme"), scheme))
        dropped = int(pc.sum(rows.column("dropped")).as_py() or 0)
        counts[scheme] = {"candidates": rows.num_rows, "dropped": dropped, "kept": rows.num_rows - dropped}
    if counts:
        reference = next(iter(counts.values()))["candidates"]
        for scheme, scheme_counts in counts.items():
            _require(checks, f"drops: {scheme} covers every candidate annotation", scheme_counts["candidates"], reference)
    return counts


def _check_set(checks: list[dict], results: Path, name: str, mask_free: list[str], made: dict[str, Counter]) -> dict:
    exported = json.loads((results / "sets" / name / "summary.json").read_text())
    for split, counts in exported["splits"].items():
        # every split a set exports is needed (val: model selection of both families), and an empty
        # one would be a 0-row Parquet part and a YOLO folder that its consumers refuse to load
        _require_some(checks, f"sets: {name}/{split}", counts["images"],
                      f"no image in split {split!r}: check splits (ratios, groups) and segment.qc")
        copies = exported["repeat"] if split == "train" else 1
        expected = sum(made["mask_free" if v in mask_free else "masked"][split] for v in exported["variants"]) * copies
        _require(checks, f"sets: {name}/{split} images = its variants' {split} images x repeats", counts["images"], expected)
    return exported["splits"]


def run(results: str | Path, variants: list[str], sets: list[str], out: str | Path, mask_free: list[str]) -> dict:
    summary = build(results, variants, sets, mask_free)
    write_json(out, summary)
    return summary


def summarise(accounting: str | Path, learning: str | Path | None, out: str | Path) -> dict:
    """results/summary.json: the accounting of the data stages, and the learning check of the
    trained models (null without training), whose warning is printed to the log as well."""
    summary = json.loads(Path(accounting).read_text())
    summary["learning"] = json.loads(Path(learning).read_text()) if learning else None
    if summary["learning"] and not summary["learning"]["all_learnt"]:
        print(summary["learning"]["message"], flush=True)
    write_json(out, summary)
    return summary
