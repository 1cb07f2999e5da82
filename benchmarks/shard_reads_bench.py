"""What a shard job reads of a large ingest."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bgshift.ingest import tables
from common import best_of, demo_world, segment_world


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
