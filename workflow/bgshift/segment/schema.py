"""What segmentation writes: a row per image (its masks, their source, QC) and the shard's
background statistics (for the dataset's mean background colour and image)."""
from __future__ import annotations

import pyarrow as pa

from ..ingest.tables import RLE_TYPE

INSTANCE_TYPE = pa.struct(
    [("ann_id", pa.int64()), ("segmentation", RLE_TYPE), ("source", pa.string()), ("iou_vs_gt", pa.float64())]
)
SEGMENT_SCHEMA = pa.schema(
    [
        ("image_id", pa.int64()),
        ("mask_source", pa.string()),  # gt | deeplabv3 | grabcut | none (no instances)
        ("foreground", RLE_TYPE),
        ("instances", pa.list_(INSTANCE_TYPE)),
        ("fg_pixels", pa.int64()),
        ("fill_ratio", pa.float64()),  # foreground share of the union of boxes
        ("qc_pass", pa.bool_()),
        ("qc_reason", pa.string()),
        ("decoded", pa.bool_()),  # false: the image does not decode whole (no variant can be made of it)
    ]
)
STATS_SCHEMA = pa.schema(
    [("size", pa.int32()), ("count", pa.int64()), ("sum_rgb", pa.list_(pa.float64())),
     ("pixel_sum", pa.list_(pa.float64())), ("pixel_weight", pa.list_(pa.float64()))]
)
MEAN_IMAGE_SIZE = 96  # the per-pixel mean background is kept at this square size
