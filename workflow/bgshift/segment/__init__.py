"""Segment: per image, a foreground mask and per-instance masks, with their source and QC.

Methods: ground truth (`gt`), DeepLabv3 (`deeplabv3`, see deeplab.py), GrabCut inside
each box (`grabcut`, as Xiao et al.), or `auto` (gt where the image has masks, else
DeepLabv3 when a model is available, else GrabCut). Model masks are restricted to the
slightly expanded boxes and split into instances. Images failing QC are marked so the
variant stage leaves them out of the variants that need masks; every instance with a
ground-truth mask can be scored.

shard.py: the shard job and QC; grabcut.py: masks from boxes; deeplab.py: the DeepLab model;
model.py: fine-tuning it; sheets.py: contact sheets; summary.py: the QC report, the mean
background and the mask-quality table; schema.py: what a shard writes.
"""
from .grabcut import grabcut_instance, split_by_boxes
from .model import MaskedImages, train_model
from .schema import MEAN_IMAGE_SIZE, SEGMENT_SCHEMA
from .shard import Shard, decode, run_shard
from .sheets import contact_sheet, write_contact_sheet
from .summary import summarise

__all__ = ["MEAN_IMAGE_SIZE", "MaskedImages", "SEGMENT_SCHEMA", "Shard", "contact_sheet", "decode", "grabcut_instance", "run_shard", "split_by_boxes",
           "summarise", "train_model", "write_contact_sheet"]
