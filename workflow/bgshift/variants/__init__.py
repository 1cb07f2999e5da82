"""Variants: the configured catalog expanded into named variants (grids -> one name each)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from ..config import check_name
from .catalog import FAMILIES

COLOURS = {"red": [255, 0, 0], "green": [0, 255, 0], "blue": [0, 0, 255], "black": [0, 0, 0], "white": [255, 255, 255],
           "gray": [128, 128, 128]}
SCENE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Grid parameters and the letter that names them: bg_blur: {sigma: [5, 15]} -> bg_blur_s5, bg_blur_s15.
GRID_LETTERS = {"sigma": "s", "margin": "m", "feather": "f"}


@dataclass(frozen=True)
class VariantSpec:
    name: str
    family: str
    params: dict = field(hash=False, compare=False)


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _colour(value) -> list[int]:
    return COLOURS[value] if isinstance(value, str) else [int(v) for v in value]


def scene_files(scenes_dir: str | Path) -> dict[str, Path]:
    folder = Path(scenes_dir)
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in SCENE_SUFFIXES) if folder.is_dir() else []
    return {p.stem: p for p in files}


def _choices(family: str, params: dict, scenes_dir: str | Path) -> list[tuple[str, dict]]:
    """(name suffix, parameters) for each variant a family's config expands to."""
    if family in ("bg_color", "only_fg"):
        colours = params.get("colours", {"black": "black"} if family == "only_fg" else {})
        if family == "only_fg" and list(colours) == ["black"]:
            return [("", {"colour": [0, 0, 0], "label": "black"})]
        return [(f"_{name}", {"colour": _colour(c), "label": name}) for name, c in colours.items()]
    if family == "bg_mean":
        return [("_pixel" if flag else "", {"per_pixel": flag}) for flag in _listed(params.get("per_pixel", False))]
    if family == "bg_scene":
        available = scene_files(scenes_dir)
        names = params.get("scenes") or sorted(available)
        missing = [n for n in names if n not in available]
        if missing or not names:
            raise ValueError(f"variants.catalog.bg_scene: no scene image for {missing or 'any scene'} in {scenes_dir}/ (.jpg/.png)")
        return [(f"_{check_name(n, f'variants.scenes_dir: scene file {available[n]}')}", {"scene": n, "scene_path": str(available[n])})
                for n in names]
    if family.startswith("unl_") and "drop" in params:  # masking after dropping: one variant per scheme
        rest = {k: v for k, v in params.items() if k != "drop"}
        return [(suffix + ("" if scheme == "none" else f"_{scheme}"), {**chosen, "drop": None if scheme == "none" else scheme})
                for scheme in _listed(params["drop"]) for suffix, chosen in _choices(family, rest, scenes_dir)]
    grid = {k: v for k, v in params.items() if k in GRID_LETTERS and isinstance(v, list)}
    fixed = {k: v for k, v in params.items() if k not in grid}
    keys = sorted(grid)
    return [("".join(f"_{GRID_LETTERS[k]}{v:g}" for k, v in zip(keys, values)), {**fixed, **dict(zip(keys, values))})
            for values in itertools.product(*(grid[k] for k in keys))]


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
        for suffix, chosen in _choices(family, params, settings["scenes_dir"]):
            for f in _listed(feather):
                name = check_name(family + suffix + (f"_f{f:g}" if isinstance(feather, list) and f else ""),
                                  f"variants.catalog.{family} (a variant name it expands to)")
                specs.append(VariantSpec(name, family, {**chosen, "feather": float(f), "family": family}))
    names = [s.name for s in specs]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"variants.catalog expands to duplicate variant names {clashes}")
    return specs
