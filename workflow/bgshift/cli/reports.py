"""The reporting commands: tables, plots, accounting, findings, and two helpers."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import config as cfg
from .registry import command, load_config


@command("report-tables", "long metrics table and paper-shaped tables", True, [
    ("--metrics", {"nargs": "+", "required": True}), ("--out", {"required": True})])
def cmd_report_tables(args: argparse.Namespace) -> None:
    from ..report import tables

    print(tables.tables(args.metrics, args.out, load_config(args)["evaluate"]))


@command("plots", "metric plots and detections drawn on every test set", True, [
    ("--metrics", {"nargs": "+", "required": True}), ("--manifests", {"nargs": "+", "required": True}),
    ("--out", {"required": True}), ("--examples", {"required": True, "help": "the test_original picture"}),
    ("--detections", {"required": True, "help": "folder of one picture per test set"}),
    ("--drop-of", {"required": True, "help": "JSON: training set -> its drop scheme"}),
    ("--runs", {"nargs": "*", "default": [], "help": "the runs' done.json (their loss curves)"}),
    ("--curves", {"required": True, "help": "folder of one loss-curve picture per model"})])
def cmd_plots(args: argparse.Namespace) -> None:
    from ..report import curves, pictures, plots

    from ..report.tables import per_class_names

    config = load_config(args)
    plots.plots(args.metrics, args.out, json.loads(args.drop_of), per_class_names(config["evaluate"]["table_metrics"] or []))
    print(f"loss curves of {curves.curves(args.runs, args.curves)}")
    drawn = pictures.detection_pictures(args.manifests, args.examples, args.detections, config["evaluate"]["score_threshold"],
                                        config["evaluate"]["example_images"])
    print(f"detections drawn on {len(drawn)} test sets")


@command("drop-sheet", "each drop scheme's first images that lose a box: kept boxes green, erased red", False, [
    ("--ingest", {"required": True}), ("--drops", {"required": True}), ("--out", {"required": True}),
    ("--images", {"type": int, "required": True, "help": "images per scheme (evaluate.example_images)"})])
def cmd_drop_sheet(args: argparse.Namespace) -> None:
    from ..report import pictures

    print(f"drop schemes drawn: {pictures.drop_overlays(args.ingest, args.drops, args.out, args.images)}")


@command("results-page", "results/index.html: learning check, findings, heatmap tables, pictures, provenance", True, [
    ("--results", {"required": True}), ("--families", {"required": True, "help": "JSON: test set -> its variant family"}),
    ("--out", {"required": True})])
def cmd_results_page(args: argparse.Namespace) -> None:
    from ..report import page
    from ..run_settings import result_settings

    # the rule's JSON is already the config the page shows (validating it again would put back the
    # run-only settings it leaves out, as their defaults)
    shown_config = json.loads(args.config_json) if args.config_json else result_settings(cfg.load(args.config))
    shown = page.build(args.results, shown_config, json.loads(args.families), args.out)
    print(f"{args.out}: {len(shown['tables'])} tables, {shown['claims']} claims, {shown['pictures']} pictures")


@command("accounting", "per-stage counts into results/accounting.json; fails if they do not add up", False, [
    ("--results", {"required": True}), ("--variants", {"nargs": "+", "required": True}),
    ("--families", {"nargs": "+", "required": True, "help": "each variant's family, in --variants' order"}),
    ("--sets", {"nargs": "+", "required": True}), ("--out", {"required": True})])
def cmd_accounting(args: argparse.Namespace) -> None:
    from .. import accounting
    from ..variants.families import MASK_FREE_FAMILIES

    if len(args.families) != len(args.variants):
        raise SystemExit(f"accounting: {len(args.variants)} variants but {len(args.families)} families")
    mask_free = [name for name, family in zip(args.variants, args.families) if family in MASK_FREE_FAMILIES]
    summary = accounting.run(args.results, args.variants, args.sets, args.out, mask_free)
    print(f"{len(summary['checks'])} checks passed")


@command("summary", "results/summary.json: the accounting and whether the models learnt", False, [
    ("--accounting", {"required": True}), ("--learning", {"nargs": "?", "default": None}), ("--out", {"required": True})])
def cmd_summary(args: argparse.Namespace) -> None:
    from .. import accounting

    summary = accounting.summarise(args.accounting, args.learning, args.out)
    print((summary["learning"] or {}).get("message", "no model was trained"))


@command("findings", "measure the declared claims: effects, Holm-adjusted intervals, verdicts (from stored evaluations)", False, [
    ("--configs", {"nargs": "+", "help": "config files of a study (their results folders must be scored); or the rule's options:"}),
    ("--config-json", {"help": "the findings rule's slice of the config (findings, evaluate.window, seed)"}),
    ("--models", {"nargs": "+", "help": "train.models' names"}),
    ("--per-image", {"nargs": "*", "help": "every run's per_image.parquet"}),
    ("--made-by", {"default": "snakemake", "help": "the command quoted in findings.md"}),
    ("--out", {"required": True, "help": "folder of findings.md, findings.json and findings/"})])
def cmd_findings(args: argparse.Namespace) -> None:
    from ..findings import engine

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


@command("unlock-stale", "remove Snakemake's lock left by a killed run (refused while a run is alive)", False)
def cmd_unlock_stale(args: argparse.Namespace) -> None:
    from .. import locks

    print(locks.unlock_if_stale("."))


@command("config-doc", "print the config reference (config/README.md) from the schema", False)
def cmd_config_doc(args: argparse.Namespace) -> None:
    from .. import config_doc

    sys.stdout.write(config_doc.reference_markdown())
