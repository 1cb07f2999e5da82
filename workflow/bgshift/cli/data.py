"""The data stages' commands: ingest to the exported sets and crops."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .registry import TORCH_DEVICE, command, load_config


@command("ingest", "read the dataset into canonical tables + rejects", True, [("--out", {"required": True})])
def cmd_ingest(args: argparse.Namespace) -> None:
    from .. import ingest

    summary = ingest.run(load_config(args), args.out)
    print(json.dumps(summary, indent=2, sort_keys=True))
    print(ingest.summary_line(summary, Path(args.out) / "rejects.parquet"))


@command("segment", "segment one shard: masks, QC, contact sheet, background statistics", True, [
    ("--ingest", {"required": True}), ("--shard", {"required": True}), ("--out", {"required": True}),
    ("--stats", {"required": True}),
    ("--model", {"nargs": "?", "default": None, "help": "fine-tuned segmentation model (none: no value)"}),
    ("--batch", {"type": int, "default": 8, "help": "images decoded and segmented together (segment.deeplabv3.batch_size)"}),
    TORCH_DEVICE])
def cmd_segment(args: argparse.Namespace) -> None:
    from .. import segment

    config = load_config(args)
    config["segment"]["deeplabv3"].update(batch_size=args.batch, device=args.device)  # how it runs, not what it writes
    result = segment.run_shard(config, args.ingest, int(args.shard), args.out, args.stats, args.model)
    print(json.dumps(result, sort_keys=True))


@command("segment-model", "fine-tune the DeepLabV3+ used by segment.deeplabv3.weights=train", True, [
    ("--ingest", {"required": True}), ("--out", {"required": True}), TORCH_DEVICE])
def cmd_segment_model(args: argparse.Namespace) -> None:
    from .. import segment

    config = load_config(args)
    config["segment"]["deeplabv3"]["device"] = args.device
    result = segment.train_model(config, args.ingest, args.out)
    print(json.dumps(result, sort_keys=True))


@command("segment-summary", "combine shards: QC report, background mean, mask IoU table", False, [
    ("--shards", {"nargs": "+", "required": True}), ("--stats", {"nargs": "+", "required": True}),
    ("--categories", {"required": True}), ("--annotations", {"required": True}),
    ("--out", {"required": True}), ("--tables", {"required": True})])
def cmd_segment_summary(args: argparse.Namespace) -> None:
    from .. import segment

    result = segment.summarise(args.shards, args.stats, args.categories, args.annotations, args.out, args.tables)
    print(json.dumps(result, indent=2, sort_keys=True))


@command("variants", "write every configured variant of one shard", True, [
    ("--ingest", {"required": True}), ("--segment", {"required": True}),
    ("--shard", {"required": True}), ("--background", {"required": True}), ("--mean-background", {"required": True}),
    ("--out", {"required": True}), ("--record", {"required": True, "help": "the shard's manifest record (JSON)"}),
    ("--drops", {"default": None}), ("--splits", {"default": None, "help": "mixed_* donors from each image's own split"}),
    ("--group-mb", {"type": int, "required": True, "help": "megabytes of JPEG bytes held before a write (memory bound)"}),
    ("--donor-cache", {"type": int, "required": True, "help": "decoded donor backgrounds kept for reuse (memory bound)"})])
def cmd_variants(args: argparse.Namespace) -> None:
    from ..variants import engine

    config = load_config(args)
    config["variants"].update(group_mb=args.group_mb, donor_cache=args.donor_cache)  # memory bounds, no part of the job's config
    result = engine.run_shard(config, args.ingest, args.segment, int(args.shard), args.background, args.mean_background,
                              args.out, args.record, args.drops, args.splits)
    print(json.dumps(result, sort_keys=True))


@command("variant-manifest", "one manifest of every shard's variant files (what export and accounting read)", False, [
    ("--records", {"nargs": "+", "required": True}), ("--out", {"required": True})])
def cmd_variant_manifest(args: argparse.Namespace) -> None:
    from ..variants import manifest

    result = manifest.combine(args.records, args.out)
    print(json.dumps({k: result[k] for k in ("images", "mask_free_only", "undecodable")} | {"shards": len(result["shards"])}, sort_keys=True))


@command("variant-sheet", "contact sheet: the same images across all variants", True, [
    ("--names", {"nargs": "+", "required": True}), ("--shard-dir", {"required": True, "help": "one shard's variants folder"}),
    ("--out", {"required": True})])
def cmd_variant_sheet(args: argparse.Namespace) -> None:
    from ..variants import sheet

    config = load_config(args)
    files = {name: Path(args.shard_dir) / f"{name}.parquet" for name in args.names}
    sheet.write(files, args.out, config["variants"]["contact_sheet"]["images"], config["variants"]["contact_sheet"]["size"])


@command("segment-sheet", "contact sheet of a shard: the first images and their masks, for people to review", True, [
    ("--ingest", {"required": True}), ("--masks", {"required": True}), ("--out", {"required": True})])
def cmd_segment_sheet(args: argparse.Namespace) -> None:
    from .. import segment

    settings = load_config(args)["segment"]["contact_sheet"]
    segment.write_contact_sheet(args.ingest, args.masks, args.out, settings["images"], settings["size"])


@command("variant-names", "list the variant names the config expands to", True)
def cmd_variant_names(args: argparse.Namespace) -> None:
    from ..variants import engine

    print("\n".join(engine.variant_names(load_config(args))))


@command("splits", "assign every source image to train/val/test", True, [
    ("--images", {"required": True}), ("--out", {"required": True})])
def cmd_splits(args: argparse.Namespace) -> None:
    from .. import splits

    print(json.dumps(splits.run(load_config(args), args.images, args.out), sort_keys=True))


@command("drops", "annotation-drop schemes: kept/dropped per annotation + statistics table", True, [
    ("--annotations", {"required": True}), ("--out", {"required": True}), ("--tables", {"required": True})])
def cmd_drops(args: argparse.Namespace) -> None:
    from .. import drops

    print(json.dumps(drops.run(load_config(args), args.annotations, args.out, args.tables), sort_keys=True))


@command("export", "export one set as sharded Parquet, COCO and YOLO", True, [
    ("--definition", {"required": True, "help": "the set's definition file (JSON, one entry of sets.definitions)"}),
    ("--variant-manifest", {"required": True}), ("--splits", {"required": True}),
    ("--drops", {"required": True}), ("--categories", {"required": True}), ("--out", {"required": True})])
def cmd_export(args: argparse.Namespace) -> None:
    from .. import export

    settings = load_config(args)["sets"]
    with open(args.definition, encoding="utf-8") as fh:
        definition = json.load(fh)
    summary = export.export(definition, settings["part_rows"], settings["yolo_polygons"], args.variant_manifest, args.splits,
                          args.drops, args.categories, args.out)
    print(json.dumps(summary, indent=2, sort_keys=True))


@command("crops", "classification samples of one set: a crop per labelled object, ImageFolder and Parquet", True, [
    ("--set-dir", {"required": True}), ("--annotations", {"required": True}), ("--categories", {"required": True}),
    ("--out", {"required": True})])
def cmd_crops(args: argparse.Namespace) -> None:
    from .. import crops

    config = load_config(args)
    summary = crops.export(config["classify"], config["sets"]["part_rows"], args.set_dir, args.annotations, args.categories, args.out)
    print(json.dumps(summary, indent=2, sort_keys=True))


@command("challenge", "the backgrounds challenge set: test foregrounds on K Only-BG-T backgrounds", True, [
    ("--original", {"required": True, "help": "the test_original set"}), ("--only-bg-t", {"required": True, "help": "the test_only_bg_t set"}),
    ("--categories", {"required": True}), ("--out", {"required": True})])
def cmd_challenge(args: argparse.Namespace) -> None:
    from .. import crops

    config = load_config(args)
    summary = crops.export_challenge(config["classify"], config["sets"]["part_rows"], config["seed"], args.original,
                                     args.only_bg_t, args.categories, args.out)
    print(json.dumps(summary, indent=2, sort_keys=True))
