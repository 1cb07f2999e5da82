"""`make bench`: performance figures, each printed as a ratio against a floor or baseline
measured in the same run on the same data (never absolute timings alone).

    python benchmarks/run.py [findings|planning|variants|segment|train|evaluate|memory|shard_reads ...] [--sizes 640x480,1920x1080]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bgshift import config, drops, images, ingest, segment  # noqa: E402
from bgshift.ingest import tables  # noqa: E402
from findings_bench import bench_findings  # noqa: E402


def best_of(*fns, rounds: int = 3, between=None) -> list[float]:
    """Fastest time of each function over interleaved rounds (a, b, a, b, ...), so a
    baseline and its contender see the same machine conditions; `between` runs untimed
    after each round (removing what a round wrote)."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
        if between:
            between()
    return best


def demo_world(root: Path, n: int, width: int, height: int, method: str = "gt", shards: int = 1) -> dict:
    """A synthetic world of `shards` shards of `n` images each, ingested, with its drops."""
    demo = config.load(REPO / "config" / "config.yaml")
    cfg = config.validate({"seed": 0, "shard_size": n,
                           "dataset": {"kind": "synthetic", "synthetic": {"num_images": n * shards, "width": width, "height": height}},
                           "segment": {"method": method}, "drops": demo["drops"],
                           "variants": {**demo["variants"], "scenes_dir": str(REPO / "resources" / "backgrounds")}})
    ingest.run(cfg, root / "ingest")
    drops.run(cfg, root / "ingest" / "annotations.parquet", root / "drops.parquet", root / "tables")
    return cfg


def segment_world(cfg: dict, root: Path, shards: int = 1) -> Path:
    """Segment every shard of a demo world and summarise them into root/seg, as the pipeline does."""
    seg = root / "seg"
    for shard in range(shards):
        segment.run_shard(cfg, root / "ingest", shard, seg / f"{shard}.parquet", seg / f"{shard}.stats.parquet")
    segment.summarise([seg / f"{shard}.parquet" for shard in range(shards)], [seg / f"{shard}.stats.parquet" for shard in range(shards)],
                      root / "ingest" / "categories.parquet", root / "ingest" / "annotations.parquet", seg, root / "tables")
    return seg


def bench_variants(sizes: list[tuple[int, int]], n: int = 24, world_shards: int = 1) -> None:
    """The variant stage (the whole shard job of `n` images) against its codec floor, at each image
    size. Donor reuse and the writer's per-file cost depend on `n`; in a world of one shard every
    donor is one of the job's own images, in a larger one most come from other shards, as at
    scale (docs/benchmarks.md)."""
    from bgshift.variants import engine, expand

    for width, height in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            cfg = demo_world(root, n, width, height, shards=world_shards)
            seg = segment_world(cfg, root, world_shards)
            specs = expand(cfg["variants"])
            k, quality = len(specs), cfg["variants"]["jpeg_quality"]
            shard_images = tables.shard_image_ids(tables.image_ids(root / "ingest"), 0, n)
            paths = [im["path"] for im in tables.Dataset.load(root / "ingest", shard_images).images]

            def floor():  # the codec work alone, in OpenCV's native channel order
                for path in paths:
                    pixels = images.read_bgr(path)
                    for _ in range(k):
                        images.encode_jpeg_bgr(pixels, quality)

            def decode():  # one decode of each image: what each donor from another shard adds
                for path in paths:
                    images.read_bgr(path)

            jobs = []

            def stage():  # into a new folder, as a pipeline job writes (Snakemake removed any old one before)
                jobs.append(engine.ShardJob(cfg, root / "ingest", seg / "0.parquet", 0,
                                            seg / "summary.json", seg / "mean_background.png", root / "drops.parquet"))
                jobs[-1].run(root / "out" / "00000")

            t_floor, t_stage, t_decode = best_of(floor, stage, decode, rounds=5 if width * height <= 640 * 480 else 3,
                                                 between=lambda: shutil.rmtree(root / "out"))
            decodes, encodes = jobs[-1].decoded.loads, jobs[-1].encodes
        per = lambda t: 1000 * t / n  # noqa: E731
        print(f"variants: {k} variants of a {n}-image shard of a {world_shards}-shard world at {width}x{height}, JPEG q{quality}, one process")
        print(f"  floor (decode once + {k} encodes): {per(t_floor):7.1f} ms/image")
        print(f"  variant stage (whole shard job):   {per(t_stage):7.1f} ms/image")
        print(f"  images decoded (sources, donors):  {decodes / n:7.2f} per image (the floor: 1)")
        print(f"  JPEG encodes (equal pixels once):  {encodes / n:7.2f} per image (the floor: {k})")
        print(f"  ratio stage/floor: {t_stage / t_floor:.2f}x (target <= 1.30x)")
        if decodes > n:  # donors from other shards: decodes the donor plan demands, which the floor leaves out
            with_donors = t_floor + (decodes / n - 1) * t_decode
            print(f"  ratio stage/(floor + the donors' {decodes / n - 1:.2f} decodes an image): {t_stage / with_donors:.2f}x")


def bench_segment() -> None:
    import torch

    from bgshift.segment import deeplab

    n = 32
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = demo_world(root, n, 320, 240)
        ds = tables.Dataset.load(root / "ingest")
        pictures = [images.read_rgb(im["path"]) for im in ds.images]
        anns = [ds.annotations.get(im["image_id"], []) for im in ds.images]
        torch.manual_seed(0)
        settings = {**cfg["segment"]["deeplabv3"], "input_size": 320}
        import torchvision.models.segmentation as tv

        model = tv.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
        device = deeplab.pick_device(settings["device"])
        fast = deeplab.Segmenter(model.to(device, memory_format=torch.channels_last).eval(), "torchvision", 320, device)
        naive_model = tv.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).to(device).eval()
        naive_model.load_state_dict(model.state_dict())

        def batched():
            for i in range(0, n, 8):
                fast.foreground_probability(pictures[i : i + 8])

        def naive():  # batch 1, contiguous NCHW, autograd on: the loop people write first
            for pic in pictures:
                x = fast.preprocess([pic]).contiguous()
                out = naive_model(x)["out"]
                (1 - torch.softmax(out, 1)[:, 0]).detach().cpu().numpy()

        t_fast, t_naive = best_of(batched, naive, rounds=2)
        g = cfg["segment"]["grabcut"]

        def grabcut():
            for pic, a in zip(pictures, anns):
                for ann in a:
                    segment.grabcut_instance(pic, ann["bbox"], g["iterations"], g["min_fill"], g["margin"], g["max_side"])

        (t_gc,) = best_of(grabcut, rounds=1)
    boxes = sum(len(a) for a in anns)
    print(f"segment: DeepLabv3-MobileNetV3 at 320x320 on {device}, {n} images")
    print(f"  naive loop (batch 1, no channels_last, autograd): {n / t_naive:6.1f} images/s")
    print(f"  stage path (batch 8, channels_last, inference_mode): {n / t_fast:6.1f} images/s")
    print(f"  speed-up: {t_naive / t_fast:.2f}x")
    print(f"  GrabCut in boxes: {n / t_gc:6.1f} images/s ({boxes / t_gc:.1f} boxes/s, {boxes} boxes)")


def _mean_of(output):
    """A scalar depending on every tensor of a model's (possibly nested) output."""
    import torch

    if isinstance(output, torch.Tensor):
        return output.float().mean()
    values = output.values() if isinstance(output, dict) else output if isinstance(output, (list, tuple)) else []
    return sum((_mean_of(v) for v in values), torch.zeros(()))


def bench_train() -> None:
    """Training images/s at the demo size, against each model's compute floor (forward,
    backward and step on batches already in memory) measured in the same run."""
    import json

    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import run_stages  # the in-process pipeline the tests use

    from bgshift.train import detection, frcnn

    demo = config.load(REPO / "config" / "config.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = config.validate({"seed": 0, "dataset": {"kind": "synthetic", "synthetic": {"num_images": 24}},
                               "segment": {"method": "gt"}, "splits": {"ratios": {"train": 0.75, "val": 0.25, "test": 0}},
                               "variants": {"scenes_dir": str(REPO / "resources" / "backgrounds"), "catalog": {"original": {}}},
                               "sets": {"train": {"original": {"variants": ["original"]}}, "test": []},
                               "train": demo["train"]})
        run_stages(cfg, root)
        set_dir = root / "sets" / "original"
        cats = sorted(__import__("pyarrow.parquet").parquet.read_table(root / "ingest" / "categories.parquet").to_pylist(), key=lambda c: c["index"])
        torch.set_num_threads(2)
        settings = {**cfg["train"]["models"]["frcnn_mobile"], "iterations": 6, "checkpoint_every": 10**6}
        split = detection.CocoSplit(set_dir / "coco" / "train.json", {c["category_id"]: c["index"] for c in cats}, frcnn.LABEL_OFFSET)
        batches = [[split.sample(i, False) for i in split.ids[k : k + settings["batch"]]] for k in range(0, 4 * settings["batch"], settings["batch"])]

        def frcnn_floor():
            torch.manual_seed(0)
            model = frcnn.build_model(settings, len(cats)).train()
            opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
            for it in range(settings["iterations"]):
                imgs, targets = zip(*batches[it % len(batches)])
                loss = sum(model(list(imgs), list(targets)).values())
                opt.zero_grad()
                loss.backward()
                opt.step()

        counter = iter(range(100))

        def frcnn_stage():
            frcnn.train(settings, set_dir, root / f"run{next(counter)}", 0, False, cats)

        t_floor, t_stage = best_of(frcnn_floor, frcnn_stage, rounds=2)
        images = settings["iterations"] * settings["batch"]
        print(f"train: Faster R-CNN MobileNetV3-FPN at {settings['min_size']}-{settings['max_size']} px, batch {settings['batch']}, CPU (2 threads)")
        print(f"  compute floor (batches in memory): {images / t_floor:6.2f} images/s")
        print(f"  training loop (decode, flips, schedule, clipping): {images / t_stage:6.2f} images/s")
        print(f"  loop/floor time ratio: {t_stage / t_floor:.2f}x")

        from ultralytics import YOLO
        from ultralytics.nn.tasks import DetectionModel

        y = cfg["train"]["models"]["yolo_n"]
        n_train = len(json.loads((set_dir / "coco" / "train.json").read_text())["images"])
        epochs = 3

        def yolo_floor():
            model = DetectionModel("yolov8n.yaml", nc=len(cats), verbose=False).train()
            opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
            x = torch.rand(y["batch"], 3, y["imgsz"], y["imgsz"])
            for _ in range(epochs * -(-n_train // y["batch"])):
                loss = _mean_of(model(x))
                opt.zero_grad()
                loss.backward()
                opt.step()

        def yolo_stage():
            YOLO("yolov8n.yaml").train(data=str(set_dir / "yolo" / "data.yaml"), epochs=epochs, imgsz=y["imgsz"], batch=y["batch"],
                                       device="cpu", workers=0, plots=False, val=False, verbose=False, project=str(root / "y"),
                                       name=f"r{next(counter)}", exist_ok=True, amp=False)

        t_floor, t_stage = best_of(yolo_floor, yolo_stage, rounds=2)
        images = epochs * n_train
        print(f"train: YOLOv8n at {y['imgsz']} px, batch {y['batch']}, CPU")
        print(f"  compute floor (one batch in memory): {images / t_floor:6.2f} images/s")
        print(f"  ultralytics trainer (loading, mosaic, loss, EMA): {images / t_stage:6.2f} images/s")
        print(f"  trainer/floor time ratio: {t_stage / t_floor:.2f}x")


def synthetic_detections(n_images: int, n_detections: int, n_classes: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """A COCO ground truth (as a dataset dict) and detections: a jittered, scored copy of most
    objects plus scattered false positives, up to n_detections."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images = [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in range(1, n_images + 1)]
    annotations, detections = [], []
    for image in images:
        for _ in range(rng.integers(1, 12)):
            w, h = rng.uniform(8, 200, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            cls = int(rng.integers(1, n_classes + 1))
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": cls,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            if rng.random() < 0.8:
                jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
                detections.append({"image_id": image["id"], "category_id": cls, "score": float(rng.uniform(0.2, 1.0)),
                                   "bbox": [float(x + jitter[0]), float(y + jitter[1]), float(w + jitter[2]), float(h + jitter[3])]})
    while len(detections) < n_detections:
        w, h = rng.uniform(8, 200, 2)
        detections.append({"image_id": int(rng.integers(1, n_images + 1)), "category_id": int(rng.integers(1, n_classes + 1)),
                           "score": float(rng.uniform(0.0, 0.7)),
                           "bbox": [float(rng.uniform(0, 640 - w)), float(rng.uniform(0, 480 - h)), float(w), float(h)]})
    dataset = {"images": images, "annotations": annotations,
               "categories": [{"id": c, "name": f"class{c}"} for c in range(1, n_classes + 1)]}
    return dataset, detections


def bench_evaluate() -> None:
    """`score`'s work on one evaluation (load the ground truth, COCO summary, per-class AP, count
    MAE overall and per class) with faster-coco-eval, against the same with pycocotools."""
    from bgshift import metrics

    dataset, dets = synthetic_detections(5000, 100_000, 20)
    names = {c["id"]: c["name"] for c in dataset["categories"]}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        gt_path = Path(tmp) / "gt.json"
        gt_path.write_text(json.dumps(dataset))

        def score_with(engine):
            def run():
                rows[engine] = metrics.metric_rows(metrics.load_coco(gt_path, engine), dets, 0.5, names, background_only=False)
            return run

        t_reference, t_engine = best_of(score_with("pycocotools"), score_with("faster-coco-eval"), rounds=2)
    worst = max(abs(a - b) for (_, a), (_, b) in zip(rows["pycocotools"], rows["faster-coco-eval"]))
    print(f"evaluate: {len(dataset['images'])} images, {len(dataset['annotations'])} objects, {len(dets)} detections, 20 classes")
    print(f"  score with pycocotools (reference):   {t_reference:6.1f} s")
    print(f"  score with faster-coco-eval (engine): {t_engine:6.1f} s")
    print(f"  speed-up: {t_reference / t_engine:.2f}x (goal >= 6x, loading included); largest difference in "
          f"{len(rows['pycocotools'])} figures: {worst:.1e}")


def _stage_peak(stage: str, root: str) -> tuple[float, float]:
    """(resident MiB before, peak resident MiB while) one stage runs, in this fresh process,
    sampled every 2 ms (getrusage's high-water mark would include the process start)."""
    import threading

    import psutil

    from bgshift.variants import engine

    root_path, seg = Path(root), Path(root) / "seg"
    cfg = config.validate(json.loads((root_path / "config.json").read_text()))
    me, done, peak = psutil.Process(), threading.Event(), [0.0]

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], me.memory_info().rss / 2**20)
            done.wait(0.002)

    before = me.memory_info().rss / 2**20
    sampler = threading.Thread(target=sample)
    sampler.start()
    if stage == "segment":
        out = root_path / "seg2"
        segment.run_shard(cfg, root_path / "ingest", 0, out / "0.parquet", out / "stats.parquet")
    else:
        engine.run_shard(cfg, root_path / "ingest", seg / "0.parquet", 0, seg / "summary.json", seg / "mean_background.png",
                         root_path / "variants", root_path / "variants" / "00000.json", root_path / "drops.parquet")
    done.set()
    sampler.join()
    return before, peak[0]


def repeated(table, copies: int, id_columns: tuple[str, ...]):
    """`table` `copies` times over, each copy's ids shifted past the previous copy's."""
    import pyarrow as pa

    parts = []
    for k in range(copies):
        part = table
        for column in id_columns:
            step = int(pa.compute.max(table[column]).as_py()) + 1
            part = part.set_column(table.schema.get_field_index(column), column, pa.array(table[column].to_numpy() + k * step))
        parts.append(part)
    return pa.concat_tables(parts)


def bench_shard_reads() -> None:
    """What a shard job reads of a COCO-sized ingest (a 64-image demo world's tables repeated
    to 118k images): its own images and donors against the whole ingest it once read."""
    import pyarrow.parquet as pq

    from bgshift.variants import engine

    n, copies = 64, 1849  # 118,336 images
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = demo_world(root / "world", n, 320, 240)
        seg = segment_world(cfg, root / "world")
        big = root / "ingest"
        big.mkdir()
        for name, id_columns in (("images", ("image_id",)), ("annotations", ("image_id", "ann_id"))):
            table = pq.read_table(root / "world" / "ingest" / f"{name}.parquet")
            pq.write_table(repeated(table, copies, id_columns), big / f"{name}.parquet")
        (big / "categories.parquet").write_bytes((root / "world" / "ingest" / "categories.parquet").read_bytes())
        summary = json.loads((seg / "summary.json").read_text())
        (seg / "summary.json").write_text(json.dumps({**summary, "images": n * copies, "qc_failed": []}))

        def whole():
            tables.Dataset.load(big)

        def variants_setup():
            engine.ShardJob(cfg, big, seg / "0.parquet", 0, seg / "summary.json", seg / "mean_background.png", root / "world" / "drops.parquet")

        def segment_read():
            tables.Dataset.load(big, tables.shard_image_ids(tables.image_ids(big), 0, n))

        t_whole, t_variants, t_segment = best_of(whole, variants_setup, segment_read)
    print(f"shard reads: a {n}-image shard job on a {n * copies:,}-image ingest (tables of a demo world, repeated)")
    print(f"  the whole ingest into Python (what every job did):     {t_whole:6.2f} s")
    print(f"  variants job set-up (its images, donors, every class): {t_variants:6.2f} s = {t_whole / t_variants:4.1f}x less")
    print(f"  segment job's read (its images):                       {t_segment:6.2f} s = {t_whole / t_segment:4.1f}x less")


def bench_memory() -> None:
    """Peak memory of the segmentation and variant stages as one shard grows 10x. Rows are
    streamed (one batch of decoded images at a time), so what grows is per-image metadata
    (masks as RLE), not pixels: compare the growth per added image with the decoded
    variants of one image, which a job holding its shard's images would add."""
    import multiprocessing

    from bgshift.variants import expand

    sizes = (48, 480)  # both above the bounded buffers (donor_cache: 32 images; group_mb: below)
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            root = Path(tmp) / str(n)
            cfg = demo_world(root, n, 320, 240)
            cfg["variants"]["group_mb"] = 8  # ~9 images of 34 variants at this size: both shards write several row groups
            (root / "config.json").write_text(json.dumps(cfg))
            segment_world(cfg, root)
            for stage in ("segment", "variants"):
                with multiprocessing.get_context("spawn").Pool(1) as pool:
                    measured[stage, n] = pool.apply(_stage_peak, (stage, str(root)))
        k = len(expand(cfg["variants"]))
    held = 320 * 240 * 3 * (k + 1) / 2**20  # one source image and its k variants, decoded
    print(f"memory: one shard of {sizes[0]} vs {sizes[1]} images at 320x240, {k} variants, a fresh process per stage")
    for stage in ("segment", "variants"):
        (b0, p0), (b1, p1) = measured[stage, sizes[0]], measured[stage, sizes[1]]
        per_image = ((p1 - b1) - (p0 - b0)) / (sizes[1] - sizes[0]) * 1024
        print(f"  {stage:8s} peak above start: {p0 - b0:6.0f} MiB vs {p1 - b1:6.0f} MiB; peak ratio {p1 / p0:.2f}x;"
              f" growth {per_image:5.0f} KiB per added image")
    print(f"  holding decoded images instead would add {held * 1024:.0f} KiB per image"
          f" ({held * (sizes[1] - sizes[0]):.0f} MiB more for the larger shard)")


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


BENCHES = {"findings": bench_findings, "planning": bench_planning, "variants": bench_variants, "segment": bench_segment, "train": bench_train, "evaluate": bench_evaluate, "memory": bench_memory,
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
