"""One decoded source image and everything its variants share: its instances and masks,
the boxes' mask, the tiled background, blurs, soft edges and fitted pictures, each computed
once per image however many variants use it."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from .. import masks
from .drawing import Composite, cover, fast_blur, mask_region, tile_background


@dataclass
class Instance:
    ann_id: int
    category_id: int
    bbox: list[float]
    iscrowd: bool
    labelled: bool
    mask: np.ndarray | None  # HxW uint8, this instance's visible pixels (column-major, as pycocotools decodes);
    # None where segmentation found none (only in an image that failed QC, made only by MASK_FREE_FAMILIES)
    rle: dict | None  # the same mask as COCO RLE (from the segment stage: encoded once, not per variant)
    area: float  # the mask's pixels, or the box's area without a mask (COCO's area of a box-only object)
    region: tuple[slice, slice]  # rows and columns holding the mask's pixels


@dataclass
class Donor:
    """Another image whose background a mixed_* variant borrows."""

    image_id: int
    category: str
    background: np.ndarray  # its Only-BG-T pixels (only_bg_t_background)


@dataclass
class ImageContext:
    """One decoded source image and everything variants share about it."""

    image_id: int
    pixels: np.ndarray  # BGR
    instances: list[Instance]
    foreground: np.ndarray  # HxW uint8, union of all instances (row-major: OpenCV copies any other layout)
    mean_colour: np.ndarray  # dataset mean background colour (RGB)
    mean_image: np.ndarray  # dataset per-pixel mean background, any size
    donors: dict[str, Donor] = field(default_factory=dict)  # variant family -> donor
    scenes: dict[str, np.ndarray] = field(default_factory=dict)  # scene name -> pixels
    fit_cache: dict = field(default_factory=dict)  # shared by a job's images: pictures fitted per size
    dropped: dict[str, set[int]] = field(default_factory=dict)  # drop scheme -> ann_ids it drops

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[:2]

    @cached_property
    def boxes_mask(self) -> np.ndarray:
        return masks.boxes_mask([inst.bbox for inst in self.instances], self.shape)

    @cached_property
    def tiled_background(self) -> np.ndarray:
        return tile_background(self.pixels, self.boxes_mask, self.mean_colour)

    def hidden(self, drop: str | None) -> frozenset[int]:
        """Instances an unl_* variant covers: unlabelled ones, plus those the drop scheme drops."""
        dropped = self.dropped.get(drop, set()) if drop else set()
        return frozenset(i.ann_id for i in self.instances if not i.labelled or i.ann_id in dropped)

    def hidden_mask(self, hidden: frozenset[int]) -> np.ndarray:
        """Pixels of the hidden instances that no visible instance covers."""
        cache = self.__dict__.setdefault("_hidden", {})
        if hidden not in cache:
            m = np.zeros(self.shape, np.uint8)
            covered = [inst for inst in self.instances if inst.ann_id in hidden]
            visible = [inst for inst in self.instances if inst.ann_id not in hidden] if covered else []
            # each instance touches only its own box: set the hidden ones, then clear what a visible one covers
            for inst in covered:
                rows, cols = inst.region
                m[rows, cols] |= inst.mask[rows, cols]
            for inst in visible:
                rows, cols = inst.region
                m[rows, cols] &= 1 - inst.mask[rows, cols]
            cache[hidden] = m
        return cache[hidden]

    @cached_property
    def gray(self) -> np.ndarray:
        return cv2.cvtColor(cv2.cvtColor(self.pixels, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)

    def blurred(self, sigma: float) -> np.ndarray:
        cache = self.__dict__.setdefault("_blur", {})
        if sigma not in cache:
            cache[sigma] = fast_blur(self.pixels, sigma, self.__dict__.setdefault("_pyramid", [self.pixels]))
        return cache[sigma]

    def soft_edge(self, mask: np.ndarray, feather: float) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
        """Where a feathered mask is neither 0 nor 1 (its region grown by the Gaussian's
        reach), its alpha there and 1 - alpha; shared by the variants that feather the same mask."""
        cache = self.__dict__.setdefault("_alpha", {})
        key = (id(mask), feather)
        if key not in cache:
            rows, cols = self.region(mask)
            reach = int(np.ceil(4 * feather)) + 1  # OpenCV's float Gaussian kernel radius is 4 sigma
            h, w = self.shape
            roi = (slice(max(0, rows.start - reach), min(h, rows.stop + reach)),
                   slice(max(0, cols.start - reach), min(w, cols.stop + reach)))
            alpha = cv2.GaussianBlur(mask[roi].astype(np.float32), (0, 0), feather, borderType=cv2.BORDER_REPLICATE)
            cache[key] = (mask, roi, alpha, 1.0 - alpha)
        return cache[key][1:]

    def region(self, mask: np.ndarray) -> tuple[slice, slice]:
        """Rows and columns holding a mask's pixels (masked copies need look no further)."""
        cache = self.__dict__.setdefault("_region", {})
        if id(mask) not in cache:
            cache[id(mask)] = (mask, mask_region(mask))
        return cache[id(mask)][1]

    def composite(self, top: np.ndarray, bottom: np.ndarray, mask: np.ndarray, feather: float) -> Composite | np.ndarray:
        """`top` where mask is set, `bottom` elsewhere; with feather > 0 a soft edge of that
        sigma. An empty mask gives `bottom` itself (a soft edge of nothing is zero everywhere)."""
        region = self.region(mask)
        if region[0].start == region[0].stop:
            return bottom
        if feather <= 0:
            return Composite(top, bottom, mask, feather, region)
        return Composite(top, bottom, mask, feather, *self.soft_edge(mask, feather))

    @cached_property
    def objects_region(self) -> tuple[int, int, int, int] | None:
        """x0, y0, x1, y1 around every box, None without objects."""
        if not self.instances:
            return None
        corners = np.array([masks.box_corners(i.bbox, self.shape) for i in self.instances])
        return int(corners[:, 0].min()), int(corners[:, 1].min()), int(corners[:, 2].max()), int(corners[:, 3].max())

    def fitted(self, picture: np.ndarray) -> np.ndarray:
        """A picture (scene, mean image) resized to cover this image and centre-cropped to its
        size; cached per size, since a shard's images mostly share one."""
        key = (id(picture), self.shape)
        if key not in self.fit_cache:
            self.fit_cache[key] = (picture, cover(picture, self.shape))
        return self.fit_cache[key][1]
