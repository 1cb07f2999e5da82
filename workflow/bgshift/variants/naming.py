"""How a variant family's config expands into named variants: one (name suffix, parameters)
per variant (a grid -> one name per value; colours, scenes, mean kinds -> one name each)."""
from __future__ import annotations

import itertools
from pathlib import Path

from ..config import check_name

COLOURS = {"red": [255, 0, 0], "green": [0, 255, 0], "blue": [0, 0, 255], "black": [0, 0, 0], "white": [255, 255, 255],
           "gray": [128, 128, 128]}
SCENE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Grid parameters and the letter that names them: bg_blur: {sigma: [5, 15]} -> bg_blur_s5, bg_blur_s15.
GRID_LETTERS = {"sigma": "s", "margin": "m", "feather": "f"}
Choices = list[tuple[str, dict]]  # (name suffix, parameters), one per variant


def listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _colour(value) -> list[int]:
    return COLOURS[value] if isinstance(value, str) else [int(v) for v in value]


def scene_files(scenes_dir: str | Path) -> dict[str, Path]:
    folder = Path(scenes_dir)
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in SCENE_SUFFIXES) if folder.is_dir() else []
    return {p.stem: p for p in files}


def grid(family: str, params: dict, scenes_dir: str | Path) -> Choices:
    """One variant per combination of the list-valued grid parameters (none: one variant)."""
    grid_values = {k: v for k, v in params.items() if k in GRID_LETTERS and isinstance(v, list)}
    fixed = {k: v for k, v in params.items() if k not in grid_values}
    keys = sorted(grid_values)
    return [("".join(f"_{GRID_LETTERS[k]}{v:g}" for k, v in zip(keys, values)), {**fixed, **dict(zip(keys, values))})
            for values in itertools.product(*(grid_values[k] for k in keys))]


def colours(family: str, params: dict, scenes_dir: str | Path) -> Choices:
    """One variant per named colour (bg_color_red ...); only_fg on black alone is plain `only_fg`."""
    named = params.get("colours", {"black": "black"} if family == "only_fg" else {})
    if family == "only_fg" and list(named) == ["black"]:
        return [("", {"colour": [0, 0, 0], "label": "black"})]
    return [(f"_{name}", {"colour": _colour(c), "label": name}) for name, c in named.items()]


def mean_kinds(family: str, params: dict, scenes_dir: str | Path) -> Choices:
    """The mean colour (bg_mean) and/or the per-pixel mean image (bg_mean_pixel)."""
    return [("_pixel" if flag else "", {"per_pixel": flag}) for flag in listed(params.get("per_pixel", False))]


def scenes(family: str, params: dict, scenes_dir: str | Path) -> Choices:
    """One variant per scene image of variants.scenes_dir (all, or those named)."""
    available = scene_files(scenes_dir)
    names = params.get("scenes") or sorted(available)
    missing = [n for n in names if n not in available]
    if missing or not names:
        raise ValueError(f"variants.catalog.{family}: no scene image for {missing or 'any scene'} in {scenes_dir}/ (.jpg/.png)")
    return [(f"_{check_name(n, f'variants.scenes_dir: scene file {available[n]}')}", {"scene": n, "scene_path": str(available[n])})
            for n in names]


def grid_per_drop(family: str, params: dict, scenes_dir: str | Path) -> Choices:
    """Masking unlabelled objects after a drop scheme: the grid, once per scheme named in `drop`;
    `textures` (unl_patch): a folder whose pictures become the variant's pool."""
    if "textures" in params:
        textures = {k: v for k, v in params.items() if k != "textures"}
        pictures = pool(family, {"folder": params["textures"]}, scenes_dir)[0][1]["pool"]
        return [(suffix, {**chosen, "pool": pictures}) for suffix, chosen in grid_per_drop(family, textures, scenes_dir)]
    if "drop" not in params:
        return grid(family, params, scenes_dir)
    rest = {k: v for k, v in params.items() if k != "drop"}
    return [(suffix + ("" if scheme == "none" else f"_{scheme}"), {**chosen, "drop": None if scheme == "none" else scheme})
            for scheme in listed(params["drop"]) for suffix, chosen in grid(family, rest, scenes_dir)]


def pool(family: str, params: dict, scenes_dir: str | Path) -> Choices:
    """One variant whose every image gets a picture drawn (seeded) from a folder: `folder`, or
    variants.scenes_dir."""
    folder = params.get("folder") or scenes_dir
    available = scene_files(folder)
    if not available:
        raise ValueError(f"variants.catalog.{family}: no background picture (.jpg/.png) in {folder}/")
    named = {check_name(name, f"variants.catalog.{family}: picture {path}"): str(path) for name, path in available.items()}
    return [("", {**{k: v for k, v in params.items() if k != "folder"}, "pool": named})]


def pictures(params_of_variants) -> dict[str, str]:
    """Picture name -> file of every picture these variants paint with (a bg_scene's scene,
    a bg_pool's or a textured unl_patch's pool): the variant job's and the export's inputs."""
    paths: dict[str, str] = {}
    for params in params_of_variants:
        paths.update(params.get("pool") or {})
        if "scene_path" in params:
            paths[params["scene"]] = params["scene_path"]
    return paths
