"""Variants: the configured catalog expanded into named variants (grids -> one name each), each
family expanding by its record (families.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import check_name
from .families import FAMILIES
from .naming import listed, scene_files

__all__ = ["VariantSpec", "expand", "scene_files"]


@dataclass(frozen=True)
class VariantSpec:
    name: str
    family: str
    params: dict = field(hash=False, compare=False)


def expand(settings: dict) -> list[VariantSpec]:
    """Every named variant of the config, in catalog order.

    A list-valued parameter adds one variant per value, named by a suffix
    (`bg_blur: {sigma: [5, 15]}` -> bg_blur_s5, bg_blur_s15; `feather: [0, 3]` -> x, x_f3).
    Raises ValueError on duplicate names or missing scene images.
    """
    specs: list[VariantSpec] = []
    for family, params in settings["catalog"].items():
        if family not in FAMILIES:
            raise ValueError(f"variants.catalog.{family}: unknown variant family; known: {sorted(FAMILIES)}")
        params = dict(params or {})
        feather = params.pop("feather", settings["feather"])
        for suffix, chosen in FAMILIES[family].names(family, params, settings["scenes_dir"]):
            for f in listed(feather):
                name = check_name(family + suffix + (f"_f{f:g}" if isinstance(feather, list) and f else ""),
                                  f"variants.catalog.{family} (a variant name it expands to)")
                specs.append(VariantSpec(name, family, {**chosen, "feather": float(f), "family": family}))
    names = [s.name for s in specs]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"variants.catalog expands to duplicate variant names {clashes}")
    return specs
