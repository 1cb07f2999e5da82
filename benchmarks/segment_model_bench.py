"""Peak memory of fine-tuning the segmentation model as the dataset grows 10x (1k -> 10k images)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from common import demo_world, peak_memory

WIDTH, HEIGHT, SOURCE_IMAGES, ITERATIONS = 640, 480, 16, 12


def stand_in(root: Path, images: int) -> Path:
    """Ingest tables of `images` records made by repeating a 16-image synthetic world's records
    (new ids, the same files and masks): what the training job reads, at any scale, in seconds."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = root / "source"
    if not (source / "ingest" / "images.parquet").is_file():
        demo_world(source, SOURCE_IMAGES, WIDTH, HEIGHT)
    table_of = {name: pq.read_table(source / "ingest" / f"{name}.parquet") for name in ("images", "annotations")}
    out = root / str(images) / "ingest"
    out.mkdir(parents=True)
    copies = -(-images // SOURCE_IMAGES)
    for name, table in table_of.items():
        repeated = []
        for k in range(copies):
            shifted = table.set_column(table.schema.get_field_index("image_id"), "image_id",
                                       pc.add(table["image_id"], k * SOURCE_IMAGES))
            if name == "annotations":
                shifted = shifted.set_column(shifted.schema.get_field_index("ann_id"), "ann_id",
                                             pc.add(shifted["ann_id"], k * 1_000_000))
            repeated.append(shifted)
        merged = pa.concat_tables(repeated)
        if name == "images":
            merged = merged.slice(0, images)
        else:
            merged = merged.filter(pc.less_equal(merged["image_id"], images))
        pq.write_table(merged, out / f"{name}.parquet")
    pq.write_table(pq.read_table(source / "ingest" / "categories.parquet"), out / "categories.parquet")
    return out


def _peak_of_training(ingest_dir: str) -> tuple[float, float, int]:
    """(resident MiB before, peak resident MiB while) the table is read and the model trains
    ITERATIONS iterations, in this fresh process, sampled every 2 ms; and the samples it holds."""
    import torch

    from bgshift import config
    from bgshift.ingest.tables import Dataset
    from bgshift.segment.model import MaskedImages, SegmentationData, engine_settings
    from bgshift.segment.deeplab import build_binary_model
    from bgshift.train.engine import train

    torch.set_num_threads(2)
    cfg = config.validate({"dataset": {"kind": "synthetic"}, "segment": {"method": "deeplabv3", "deeplabv3": {
        "weights": "train", "train": {"input_size": 128, "batch_size": 4, "epochs": 1}}}})
    t = cfg["segment"]["deeplabv3"]["train"]
    with peak_memory() as measured:
        samples = MaskedImages(Dataset.load(ingest_dir), cfg["segment"], t["input_size"])
        settings = {**engine_settings(t, len(samples)), "iterations": ITERATIONS, "checkpoint_every": ITERATIONS}
        with tempfile.TemporaryDirectory() as run_dir:
            train("segmentation model", lambda: build_binary_model(t["arch"], t["encoder"], None),
                  SegmentationData(samples, t["colour_jitter"]), settings, Path(run_dir), 0, torch.device("cpu"))
    return measured[0], measured[1], len(samples)


def bench_segment_model() -> None:
    """The segment_model job decodes each image when its batch comes (segment/model.py): its peak
    should not grow with the images it learns from. Holding the decoded images and masks, as the
    loop before 2026-12-04 did, adds width x height x 4 bytes per image."""
    import multiprocessing

    sizes = (1_000, 10_000)
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            ingest_dir = stand_in(Path(tmp), n)
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                measured[n] = pool.apply(_peak_of_training, (str(ingest_dir),))
    (b0, p0, s0), (b1, p1, s1) = measured[sizes[0]], measured[sizes[1]]
    held = WIDTH * HEIGHT * 4 / 2**20 * s1  # RGB + a uint8 mask per image, decoded
    print(f"segment model: {ITERATIONS} training iterations on {s0} vs {s1} masked {WIDTH}x{HEIGHT} images, a fresh process each")
    print(f"  peak above start: {p0 - b0:6.0f} MiB vs {p1 - b1:6.0f} MiB; ratio 10k/1k {(p1 - b1) / (p0 - b0):.2f}x;"
          f" growth {((p1 - b1) - (p0 - b0)) / (s1 - s0) * 1024:.1f} KiB per added image")
    print(f"  holding the {s1} decoded images and masks instead: {held:,.0f} MiB; ratio held/peak {held / (p1 - b1):.0f}x")
