"""The variant families, one record each: how it draws (catalog.py), how its config expands into
names (naming.py), what it needs, and what its images keep of the objects.

Adding a family is one draw function in catalog.py, one record below and its entry in the config
schema (variants.catalog); DESIGN.md walks through one. What reads the records: the variant job
(which images a family can make, which donors and scenes to load), the set definitions (whether a
test set is background-only, scored by false positives alone), the tests (pixel invariants).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import catalog, naming

MASKS, DONORS, SCENES = "masks", "donors", "scenes"


@dataclass(frozen=True)
class VariantFamily:
    name: str
    draw: Callable  # (ImageContext, params, rng) -> catalog.Result
    names: Callable[[str, dict, str], naming.Choices] = naming.grid  # (family, params, scenes_dir)
    needs: frozenset[str] = frozenset({MASKS})  # masks (segmentation), donors (other images), scenes (files)
    background_only: bool = False  # no object is left in its images (scored by false positives)
    keeps: str | None = None  # source pixels it never changes: "foreground" or "background" (checked by the tests)

    @property
    def mask_free(self) -> bool:
        """Reads only the boxes: made of every image that decodes, segmentation QC failures too."""
        return MASKS not in self.needs


BOXES_ONLY = frozenset()
MIXED = frozenset({MASKS, DONORS})
RECORDS = (
    VariantFamily("original", catalog.original, needs=BOXES_ONLY),
    VariantFamily("only_bg_b", catalog.only_bg_b, needs=BOXES_ONLY, background_only=True),
    VariantFamily("only_bg_t", catalog.only_bg_t, needs=BOXES_ONLY, background_only=True),
    VariantFamily("no_fg", catalog.no_fg, background_only=True, keeps="background"),
    VariantFamily("only_fg", catalog.only_fg, naming.colours, keeps="foreground"),
    VariantFamily("mixed_same", catalog.mixed, needs=MIXED, keeps="foreground"),
    VariantFamily("mixed_rand", catalog.mixed, needs=MIXED, keeps="foreground"),
    VariantFamily("mixed_next", catalog.mixed, needs=MIXED, keeps="foreground"),
    VariantFamily("bg_color", catalog.bg_color, naming.colours, keeps="foreground"),
    VariantFamily("bg_mean", catalog.bg_mean, naming.mean_kinds, keeps="foreground"),
    VariantFamily("bg_noise", catalog.bg_noise, keeps="foreground"),
    VariantFamily("bg_blur", catalog.bg_blur, keeps="foreground"),
    VariantFamily("bg_crop", catalog.bg_crop),
    VariantFamily("bg_scene", catalog.bg_scene, naming.scenes, needs=frozenset({MASKS, SCENES}), keeps="foreground"),
    VariantFamily("bg_pool", catalog.bg_pool, naming.pool, needs=frozenset({MASKS, SCENES}), keeps="foreground"),
    VariantFamily("bg_gray", catalog.bg_gray, keeps="foreground"),
    VariantFamily("unl_black", catalog.unl_black, naming.grid_per_drop),
    VariantFamily("unl_color", catalog.unl_color, naming.grid_per_drop),
    VariantFamily("unl_patch", catalog.unl_patch, naming.grid_per_drop),
    VariantFamily("unl_blur", catalog.unl_blur, naming.grid_per_drop),
)
FAMILIES = {record.name: record for record in RECORDS}
# Families that read only the annotated boxes, never a mask: made of every image that decodes,
# those that failed segmentation QC too, so `original` holds the whole dataset (the
# background-augmentation report trains on all originals plus the QC-passed augmented ones).
MASK_FREE_FAMILIES = frozenset(r.name for r in RECORDS if r.mask_free)


def background_only(families: list[str]) -> bool:
    """Whether a set made of variants of these families holds no object to find."""
    return bool(families) and all(FAMILIES[f].background_only for f in families)
