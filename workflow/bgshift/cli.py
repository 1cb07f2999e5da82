"""`bgshift <stage> ...`: the command line the Snakemake rules call, one subcommand per stage."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import config as cfg
from .accounting import AccountingError
from .ingest import IngestError
from .io import RESULTS_ENV, OutsideResults
from .locks import LiveRun
from .weights import BadWeights, UnsafeWeights


def _load_config(args: argparse.Namespace) -> dict:
    if args.config_json:
        return cfg.loads_json(args.config_json)
    return cfg.load(args.config)


def cmd_ingest(args: argparse.Namespace) -> None:
    from . import ingest

    summary = ingest.run(_load_config(args), args.out)
    print(json.dumps(summary, indent=2, sort_keys=True))
    print(ingest.summary_line(summary, Path(args.out) / "rejects.parquet"))


def cmd_segment(args: argparse.Namespace) -> None:
    from . import segment

    config = _load_config(args)
    config["segment"]["deeplabv3"].update(batch_size=args.batch, device=args.device)  # how it runs, not what it writes
    result = segment.run_shard(config, args.ingest, int(args.shard), args.out, args.stats, args.model)
    print(json.dumps(result, sort_keys=True))


def cmd_segment_model(args: argparse.Namespace) -> None:
    from . import segment

    config = _load_config(args)
    config["segment"]["deeplabv3"]["device"] = args.device
    result = segment.train_model(config, args.ingest, args.out)
    print(json.dumps(result, sort_keys=True))


def cmd_segment_summary(args: argparse.Namespace) -> None:
    from . import segment

    result = segment.summarise(args.shards, args.stats, args.categories, args.annotations, args.out, args.tables)
    print(json.dumps(result, indent=2, sort_keys=True))


def cmd_variants(args: argparse.Namespace) -> None:
    from .variants import engine

    config = _load_config(args)
    config["variants"].update(group_mb=args.group_mb, donor_cache=args.donor_cache)  # memory bounds, no part of the job's config
    result = engine.run_shard(config, args.ingest, args.segment, int(args.shard), args.background, args.mean_background,
                              args.out, args.record, args.drops, args.splits)
    print(json.dumps(result, sort_keys=True))


def cmd_variant_manifest(args: argparse.Namespace) -> None:
    from .variants import manifest

    result = manifest.combine(args.records, args.out)
    print(json.dumps({k: result[k] for k in ("images", "skipped_qc")} | {"shards": len(result["shards"])}, sort_keys=True))


def cmd_variant_sheet(args: argparse.Namespace) -> None:
    from .variants import sheet

    config = _load_config(args)
    files = {name: Path(args.shard_dir) / f"{name}.parquet" for name in args.names}
    sheet.write(files, args.out, config["variants"]["contact_sheet"]["images"], config["variants"]["contact_sheet"]["size"])


def cmd_segment_sheet(args: argparse.Namespace) -> None:
    from . import segment

    settings = _load_config(args)["segment"]["contact_sheet"]
    segment.write_contact_sheet(args.ingest, args.masks, args.out, settings["images"], settings["size"])


def cmd_variant_names(args: argparse.Namespace) -> None:
    from .variants import engine

    print("\n".join(engine.variant_names(_load_config(args))))


def cmd_splits(args: argparse.Namespace) -> None:
    from . import splits

    print(json.dumps(splits.run(_load_config(args), args.images, args.out), sort_keys=True))


def cmd_drops(args: argparse.Namespace) -> None:
    from . import drops

    print(json.dumps(drops.run(_load_config(args), args.annotations, args.out, args.tables), sort_keys=True))


def cmd_export(args: argparse.Namespace) -> None:
    from . import export

    settings = _load_config(args)["sets"]
    with open(args.definition, encoding="utf-8") as fh:
        definition = json.load(fh)
    summary = export.export(definition, settings["part_rows"], settings["yolo_polygons"], args.variant_manifest, args.splits,
                          args.drops, args.categories, args.out)
    print(json.dumps(summary, indent=2, sort_keys=True))


def cmd_crops(args: argparse.Namespace) -> None:
    from . import crops

    config = _load_config(args)
    summary = crops.export(config["classify"], config["sets"]["part_rows"], args.set_dir, args.annotations, args.categories, args.out)
    print(json.dumps(summary, indent=2, sort_keys=True))


def cmd_challenge(args: argparse.Namespace) -> None:
    from . import crops

    config = _load_config(args)
    summary = crops.export_challenge(config["classify"], config["sets"]["part_rows"], config["seed"], args.original,
                                     args.only_bg_t, args.categories, args.out)
    print(json.dumps(summary, indent=2, sort_keys=True))


def cmd_train(args: argparse.Namespace) -> None:
    from . import train

    config = _load_config(args)
    model = config["train"]["models"][args.model]
    if "workers" in model:  # the families that decode with a DataLoader; how many processes is not what is learnt
        model["workers"] = args.workers
    summary = train.run(config, args.model, args.set_dir, int(args.seed), args.categories, args.run_dir, args.done, args.device)
    print(json.dumps(summary, indent=2, sort_keys=True))


def cmd_adopt(args: argparse.Namespace) -> None:
    from . import evaluate

    print(json.dumps(evaluate.adopt(_load_config(args), args.model, args.categories, args.done), indent=2, sort_keys=True))


def cmd_backbone(args: argparse.Namespace) -> None:
    from .io import write_torch
    from .train.retinanet import backbone_state
    from .weights import load_state

    body = backbone_state(load_state(args.checkpoint)["model"])
    write_torch(args.out, body)
    print(json.dumps({"out": args.out, "tensors": len(body), "parameters": sum(v.numel() for v in body.values())}))


def cmd_detect(args: argparse.Namespace) -> None:
    from . import evaluate

    test_sets = {p.rstrip("/").split("/")[-1]: p for p in args.test_sets}
    summary = evaluate.detect(_load_config(args), args.model, args.done, test_sets, args.categories, args.out, args.device)
    print(f"{len(summary['evaluations'])} evaluations")


def cmd_score(args: argparse.Namespace) -> None:
    from . import evaluate

    print(f"{evaluate.score(_load_config(args), args.manifest, args.out, args.per_image)} metric rows")


def cmd_report_tables(args: argparse.Namespace) -> None:
    from . import report

    print(report.tables(args.metrics, args.out, _load_config(args)["evaluate"]))


def cmd_plots(args: argparse.Namespace) -> None:
    from . import report

    config = _load_config(args)
    report.plots(args.metrics, args.out, json.loads(args.drop_of))
    report.detection_examples(args.manifests, args.examples, config["evaluate"]["score_threshold"], config["evaluate"]["example_images"])


def cmd_accounting(args: argparse.Namespace) -> None:
    from . import accounting

    summary = accounting.run(args.results, args.variants, args.sets, args.out)
    print(f"{len(summary['checks'])} checks passed")


def cmd_summary(args: argparse.Namespace) -> None:
    from . import accounting

    summary = accounting.summarise(args.accounting, args.learning, args.out)
    print((summary["learning"] or {}).get("message", "no model was trained"))


def cmd_findings(args: argparse.Namespace) -> None:
    from .findings import engine

    if args.configs:  # a study spanning configs (make study's worlds): each reads its own results folder
        studies = [engine.Study.of_config(path) for path in args.configs]
        made_by = f"bgshift findings --configs {' '.join(args.configs)} --out {args.out}"
    else:
        if not (args.config_json and args.per_image is not None and args.models):
            raise SystemExit("bgshift findings: give --configs, or --config-json with --models and --per-image (the findings rule)")
        studies = [engine.Study("", cfg.loads_json(args.config_json), args.models, [Path(p) for p in args.per_image])]
        made_by = args.made_by
    for row in engine.run(studies, args.out, made_by):
        low, high = row["adjusted_interval"]
        print(f"{row['claim']}: {row['effect']:+.3f} [{low:+.3f}, {high:+.3f}] {row['verdict']}")


def cmd_unlock_stale(args: argparse.Namespace) -> None:
    from . import locks

    print(locks.unlock_if_stale("."))


def cmd_config_doc(args: argparse.Namespace) -> None:
    from . import config_doc

    sys.stdout.write(config_doc.reference_markdown())


# where a training or detection job runs; no part of its config (a Snakemake resource)
DEVICE = ("--device", {"choices": ["auto", "cpu"], "default": "auto", "help": "auto: a free GPU (by lock) else the CPU"})
# segmentation's torch device: segment.deeplabv3.device, a resource of its jobs
TORCH_DEVICE = ("--device", {"default": "auto", "help": "auto (a free GPU by lock, else the CPU), cpu, cuda or cuda:N"})
# name -> (function, help, takes a config, extra options)
COMMANDS = {
    "ingest": (cmd_ingest, "read the dataset into canonical tables + rejects", True, [("--out", {"required": True})]),
    "segment": (cmd_segment, "segment one shard: masks, QC, contact sheet, background statistics", True, [
        ("--ingest", {"required": True}), ("--shard", {"required": True}), ("--out", {"required": True}),
        ("--stats", {"required": True}),
        ("--model", {"nargs": "?", "default": None, "help": "fine-tuned segmentation model (none: no value)"}),
        ("--batch", {"type": int, "default": 8, "help": "images decoded and segmented together (segment.deeplabv3.batch_size)"}),
        TORCH_DEVICE]),
    "segment-model": (cmd_segment_model, "fine-tune the DeepLabV3+ used by segment.deeplabv3.weights=train", True, [
        ("--ingest", {"required": True}), ("--out", {"required": True}), TORCH_DEVICE]),
    "segment-summary": (cmd_segment_summary, "combine shards: QC report, background mean, mask IoU table", False, [
        ("--shards", {"nargs": "+", "required": True}), ("--stats", {"nargs": "+", "required": True}),
        ("--categories", {"required": True}), ("--annotations", {"required": True}),
        ("--out", {"required": True}), ("--tables", {"required": True})]),
    "variants": (cmd_variants, "write every configured variant of one shard", True, [
        ("--ingest", {"required": True}), ("--segment", {"required": True}),
        ("--shard", {"required": True}), ("--background", {"required": True}), ("--mean-background", {"required": True}),
        ("--out", {"required": True}), ("--record", {"required": True, "help": "the shard's manifest record (JSON)"}),
        ("--drops", {"default": None}), ("--splits", {"default": None, "help": "mixed_* donors from each image's own split"}),
        ("--group-mb", {"type": int, "required": True, "help": "megabytes of JPEG bytes held before a write (memory bound)"}),
        ("--donor-cache", {"type": int, "required": True, "help": "decoded donor backgrounds kept for reuse (memory bound)"})]),
    "variant-manifest": (cmd_variant_manifest, "one manifest of every shard's variant files (what export and accounting read)", False, [
        ("--records", {"nargs": "+", "required": True}), ("--out", {"required": True})]),
    "variant-sheet": (cmd_variant_sheet, "contact sheet: the same images across all variants", True, [
        ("--names", {"nargs": "+", "required": True}), ("--shard-dir", {"required": True, "help": "one shard's variants folder"}),
        ("--out", {"required": True})]),
    "segment-sheet": (cmd_segment_sheet, "contact sheet of a shard: the first images and their masks, for people to review", True, [
        ("--ingest", {"required": True}), ("--masks", {"required": True}), ("--out", {"required": True})]),
    "variant-names": (cmd_variant_names, "list the variant names the config expands to", True, []),
    "splits": (cmd_splits, "assign every source image to train/val/test", True, [
        ("--images", {"required": True}), ("--out", {"required": True})]),
    "drops": (cmd_drops, "annotation-drop schemes: kept/dropped per annotation + statistics table", True, [
        ("--annotations", {"required": True}), ("--out", {"required": True}), ("--tables", {"required": True})]),
    "export": (cmd_export, "export one set as sharded Parquet, COCO and YOLO", True, [
        ("--definition", {"required": True, "help": "the set's definition file (JSON, one entry of sets.definitions)"}),
        ("--variant-manifest", {"required": True}), ("--splits", {"required": True}),
        ("--drops", {"required": True}), ("--categories", {"required": True}), ("--out", {"required": True})]),
    "crops": (cmd_crops, "classification samples of one set: a crop per labelled object, ImageFolder and Parquet", True, [
        ("--set-dir", {"required": True}), ("--annotations", {"required": True}), ("--categories", {"required": True}),
        ("--out", {"required": True})]),
    "challenge": (cmd_challenge, "the backgrounds challenge set: test foregrounds on K Only-BG-T backgrounds", True, [
        ("--original", {"required": True, "help": "the test_original set"}), ("--only-bg-t", {"required": True, "help": "the test_only_bg_t set"}),
        ("--categories", {"required": True}), ("--out", {"required": True})]),
    "train": (cmd_train, "train one (model, training set, seed) run; resumes from its last checkpoint", True, [
        ("--model", {"required": True}), ("--set-dir", {"required": True}), ("--seed", {"required": True}),
        ("--categories", {"required": True}), ("--run-dir", {"required": True}), ("--done", {"required": True}),
        ("--workers", {"type": int, "default": 0, "help": "DataLoader processes decoding training images (train.models.*.workers)"}),
        DEVICE]),
    "adopt": (cmd_adopt, "an evaluate-only model as a run: its weights found, its classes mapped onto the dataset's", True, [
        ("--model", {"required": True}), ("--categories", {"required": True}), ("--done", {"required": True})]),
    "backbone": (cmd_backbone, "the ResNet body of a trained RetinaNet run, as a weights file a RetinaNet can start from", False, [
        ("--checkpoint", {"required": True, "help": "a run's best.pt"}), ("--out", {"required": True})]),
    "detect": (cmd_detect, "run a trained run's checkpoints on the test sets; keep raw detections", True, [
        ("--model", {"required": True}), ("--done", {"required": True}), ("--test-sets", {"nargs": "+", "required": True}),
        ("--categories", {"required": True}), ("--out", {"required": True}), DEVICE]),
    "score": (cmd_score, "metrics from stored detections (no inference), and each test image's part in them", True, [
        ("--manifest", {"required": True}), ("--out", {"required": True}), ("--per-image", {"required": True})]),
    "report-tables": (cmd_report_tables, "long metrics table and paper-shaped tables", True, [
        ("--metrics", {"nargs": "+", "required": True}), ("--out", {"required": True})]),
    "plots": (cmd_plots, "metric plots and detection examples", True, [
        ("--metrics", {"nargs": "+", "required": True}), ("--manifests", {"nargs": "+", "required": True}),
        ("--out", {"required": True}), ("--examples", {"required": True}),
        ("--drop-of", {"required": True, "help": "JSON: training set -> its drop scheme"})]),
    "accounting": (cmd_accounting, "per-stage counts into results/accounting.json; fails if they do not add up", False, [
        ("--results", {"required": True}), ("--variants", {"nargs": "+", "required": True}),
        ("--sets", {"nargs": "+", "required": True}), ("--out", {"required": True})]),
    "summary": (cmd_summary, "results/summary.json: the accounting and whether the models learnt", False, [
        ("--accounting", {"required": True}), ("--learning", {"nargs": "?", "default": None}), ("--out", {"required": True})]),
    "findings": (cmd_findings, "measure the declared claims: effects, Holm-adjusted intervals, verdicts (from stored evaluations)", False, [
        ("--configs", {"nargs": "+", "help": "config files of a study (their results folders must be scored); or the rule's options:"}),
        ("--config-json", {"help": "the findings rule's slice of the config (findings, evaluate.window, seed)"}),
        ("--models", {"nargs": "+", "help": "train.models' names"}),
        ("--per-image", {"nargs": "*", "help": "every run's per_image.parquet"}),
        ("--made-by", {"default": "snakemake", "help": "the command quoted in findings.md"}),
        ("--out", {"required": True, "help": "folder of findings.md, findings.json and findings/"})]),
    "unlock-stale": (cmd_unlock_stale, "remove Snakemake's lock left by a killed run (refused while a run is alive)", False, []),
    "config-doc": (cmd_config_doc, "print the config reference (config/README.md) from the schema", False, []),
}


def _literal(help_text: str) -> str:
    """Help texts here are prose: argparse %-formats them, so a '95%' would break `--help`."""
    return help_text.replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bgshift", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (func, help_text, takes_config, options) in COMMANDS.items():
        p = sub.add_parser(name, help=_literal(help_text))
        if takes_config:
            source = p.add_mutually_exclusive_group(required=True)
            source.add_argument("--config", help="config YAML/JSON file")
            source.add_argument("--config-json", help="config as a JSON string (what the Snakemake rules pass)")
        for flag, kwargs in options:
            p.add_argument(flag, **{**kwargs, "help": _literal(kwargs["help"])} if "help" in kwargs else kwargs)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault(RESULTS_ENV, "results")  # every output stays inside ./results (the rules' folder)
    try:
        args.func(args)
    except (cfg.ConfigError, IngestError, AccountingError, OutsideResults, FileNotFoundError, TimeoutError, LiveRun, BadWeights,
            UnsafeWeights) as exc:
        print(f"bgshift {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
