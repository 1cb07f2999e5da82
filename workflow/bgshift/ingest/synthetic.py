"""The built-in synthetic world: procedurally generated scenes with exact instance masks.

Each image belongs to a *site* (its own ground texture and lighting), holds a few
large labelled objects in front and a small herd in the back, part of which is left
unlabelled, mirroring the sheep-counting study where unlabelled animals stood in the
background and test images came from another farm. Everything derives from the seed.

It is a laboratory: the factors the studies vary are keys, and every image records
them in world/factors.parquet (site, its home class, object and herd counts, scales):
- `confounder_strength`: the share of front objects that take their site's *home class*
  (the Waterbirds idea: 0.95 puts sheep on the meadow and crates in the quarry), so a
  detector can learn to rely on the background, and BG-gap can measure that it does;
- the herd: `background_objects` small objects of the labelled classes in the back,
  `unlabelled_share` of them without labels, except on `fully_labelled_sites` (the
  sheep study's test farm, where every animal is annotated);
- `objects_per_image` and `object_scale` / `herd_scale` (fractions of the image height);
- `context`: a labelled context class (a pond) under most front objects of one class, as the
  deck's labelled sea beside its whales; a `categories` drop scheme removes its labels again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import pyarrow as pa

from ..images import encode_jpeg
from .. import masks
from ..io import write_bytes, write_parquet
from .collector import Collector


@dataclass(frozen=True)
class Site:
    ground: tuple[int, int, int]  # mean RGB of the ground
    sky: tuple[int, int, int]  # mean RGB of the far band at the top
    grain: float  # strength of fine texture
    blotches: float  # strength of coarse texture
    light: tuple[float, float]  # brightness at the top and at the bottom of the image
    tint: tuple[float, float, float]  # colour of the light


SITES = {
    "meadow": Site((84, 138, 58), (150, 190, 225), 18, 30, (1.10, 0.90), (1.0, 1.0, 0.95)),
    "quarry": Site((132, 120, 104), (175, 165, 150), 28, 22, (0.80, 1.00), (1.05, 0.97, 0.90)),
    "beach": Site((214, 196, 150), (120, 175, 215), 10, 14, (1.00, 1.05), (1.0, 1.0, 1.0)),
    "dusk": Site((70, 88, 60), (210, 130, 90), 14, 26, (0.75, 0.55), (1.15, 0.90, 0.80)),
}

WATER = ((58, 104, 160), (34, 66, 112))  # a pond's open water and its rim
CLASS_COLOURS = {
    "sheep": (232, 228, 218),
    "crate": (150, 96, 48),
    "cone": (245, 120, 20),
    "ball": (40, 90, 210),
}


def _noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] with features about `cell` pixels wide."""
    small = rng.uniform(-1, 1, (max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def background(site: Site, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    horizon = int(h * rng.uniform(0.12, 0.22))
    img = np.empty((h, w, 3), np.float32)
    img[:] = np.array(site.ground, np.float32)
    img[:horizon] = np.array(site.sky, np.float32)
    texture = site.blotches * _noise(rng, h, w, 24) + site.grain * rng.standard_normal((h, w)).astype(np.float32)
    img[horizon:] += texture[horizon:, :, None]
    img[:horizon] += 0.3 * texture[:horizon, :, None]
    return img


def _shape_mask(cls: str, rng: np.random.Generator, h: int, w: int, cx: int, cy: int, size: int) -> tuple[np.ndarray, list]:
    """Binary mask of one object and a list of (mask, colour-scale) detail layers."""
    mask = np.zeros((h, w), np.uint8)
    details = []
    if cls == "sheep":
        ax, ay = size // 2, max(2, int(size * 0.32))
        cv2.ellipse(mask, (cx, cy), (ax, ay), 0, 0, 360, 1, -1)
        head = np.zeros_like(mask)
        hx = cx + (ax if rng.random() < 0.5 else -ax)
        cv2.circle(head, (hx, cy - ay // 2), max(2, size // 6), 1, -1)
        for lx in (cx - ax // 2, cx + ax // 2):
            cv2.rectangle(mask, (lx - max(1, size // 20), cy), (lx + max(1, size // 20), cy + ay + size // 6), 1, -1)
        mask |= head
        details.append((head, 0.25))
    elif cls == "crate":
        half = size // 2
        box = cv2.boxPoints(((cx, cy), (2 * half, int(1.4 * half)), float(rng.uniform(-20, 20))))
        cv2.fillPoly(mask, [box.astype(np.int32)], 1)
        planks = np.zeros_like(mask)
        for k in (-1, 0, 1):
            cv2.line(planks, (cx - half, cy + k * half // 2), (cx + half, cy + k * half // 2), 1, max(1, size // 16))
        details.append((planks & mask, 0.6))
    elif cls == "cone":
        half = size // 2
        pts = np.array([[cx, cy - size], [cx - half, cy + half // 3], [cx + half, cy + half // 3]], np.int32)
        cv2.fillPoly(mask, [pts], 1)
        stripe = np.zeros_like(mask)
        cv2.rectangle(stripe, (cx - half, cy - size // 2), (cx + half, cy - size // 3), 1, -1)
        details.append((stripe & mask, 3.0))
    else:  # ball
        cv2.circle(mask, (cx, cy), size // 2, 1, -1)
        band = np.zeros_like(mask)
        cv2.ellipse(band, (cx, cy), (size // 2, max(1, size // 8)), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        details.append((band & mask, 2.2))
    return mask, details


def home_class(site_name: str, settings: dict) -> str:
    """The class a site is confounded with: home_classes, else the i-th site's is the i-th class."""
    if site_name in settings["home_classes"]:
        return settings["home_classes"][site_name]
    return settings["classes"][settings["sites"].index(site_name) % len(settings["classes"])]


def _front_class(rng: np.random.Generator, site_name: str, settings: dict) -> str:
    """The site's home class with probability confounder_strength, else any class uniformly."""
    if settings["confounder_strength"] > 0 and rng.random() < settings["confounder_strength"]:
        return home_class(site_name, settings)
    return settings["classes"][int(rng.integers(len(settings["classes"])))]


def _paint_context(rng: np.random.Generator, planned: list[tuple], settings: dict, img: np.ndarray, owner: np.ndarray) -> list[dict]:
    """Ponds on the ground before any object: one under each front object of the `beside` class
    with probability `share`, or, in an image without one, somewhere on the ground with
    probability `elsewhere`; their instances (the objects painted later cover them)."""
    context, (h, w) = settings["context"], owner.shape
    spots = [(cx, cy + size // 3, size) for layer, cls, cx, cy, size in planned
             if layer == "front" and cls == context["beside"] and rng.random() < context["share"]]
    if not any(layer == "front" and cls == context["beside"] for layer, cls, *_ in planned) and rng.random() < context["elsewhere"]:
        size = int(h * rng.uniform(*settings["object_scale"]))
        spots.append((int(rng.uniform(size, max(size + 1, w - size))), int(h * rng.uniform(0.6, 0.85)), size))
    instances = []
    for cx, cy, size in spots:
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (cx, cy), (max(4, int(size * 1.1)), max(3, int(size * 0.45))), 0, 0, 360, 1, -1)
        rim = mask - cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=max(1, size // 12))
        ripple = 1.0 + 0.08 * _noise(rng, h, w, max(4, size // 4))
        sel = mask.astype(bool)
        img[sel] = np.clip(np.array(WATER[0], np.float32)[None, :] * ripple[sel, None], 0, 255)
        img[rim.astype(bool)] = np.array(WATER[1], np.float32)
        owner[sel] = len(instances) + 1
        instances.append({"class": context["name"], "layer": "context", "labelled": True, "size": size})
    return instances


def render(index: int, seed: int, settings: dict) -> tuple[np.ndarray, str, list[dict]]:
    """One scene: RGB pixels, its site, and its instances (class, mask, labelled, layer)."""
    rng = np.random.default_rng([seed, index])
    h, w = settings["height"], settings["width"]
    site_name = settings["sites"][index % len(settings["sites"])]
    site = SITES[site_name]
    img = background(site, rng, h, w)
    owner = np.zeros((h, w), np.int32)  # which instance is visible at each pixel (0 = ground)
    planned = []
    n_back = int(rng.integers(settings["background_objects"][0], settings["background_objects"][1] + 1))
    n_front = int(rng.integers(settings["objects_per_image"][0], settings["objects_per_image"][1] + 1))
    for layer, count in (("back", n_back), ("front", n_front)):
        for _ in range(count):
            if layer == "back":  # the herd: any labelled class, whatever the site
                cls = settings["classes"][int(rng.integers(len(settings["classes"])))]
                size = int(h * rng.uniform(*settings["herd_scale"]))
                cy = int(h * rng.uniform(0.25, 0.42))
            else:
                cls = _front_class(rng, site_name, settings)
                size = int(h * rng.uniform(*settings["object_scale"]))
                cy = int(h * rng.uniform(0.55, 0.85))
            cx = int(rng.uniform(size * 0.6, w - size * 0.6))
            planned.append((layer, cls, cx, cy, max(size, 6)))
    planned.sort(key=lambda p: p[3])  # paint far to near: lower in the image is closer
    instances = _paint_context(rng, planned, settings, img, owner) if settings["context"] else []
    for layer, cls, cx, cy, size in planned:
        mask, details = _shape_mask(cls, rng, h, w, cx, cy, size)
        colour = np.array(CLASS_COLOURS[cls], np.float32) * rng.uniform(0.85, 1.1)
        shade = 1.0 + 0.12 * _noise(rng, h, w, max(4, size // 3))
        sel = mask.astype(bool)
        img[sel] = np.clip(colour[None, :] * shade[sel, None], 0, 255)
        for detail, scale in details:
            dsel = detail.astype(bool)
            img[dsel] = np.clip(colour * scale, 0, 255) if scale <= 1 else np.clip(np.full(3, 60 * scale), 0, 255)
        owner[sel] = len(instances) + 1
        unlabelled = layer == "back" and rng.random() < settings["unlabelled_share"]
        labelled = not unlabelled or site_name in settings["fully_labelled_sites"]
        instances.append({"class": cls, "layer": layer, "labelled": bool(labelled), "size": size})
    light = np.linspace(site.light[0], site.light[1], h, dtype=np.float32)[:, None, None] * np.array(site.tint, np.float32)
    pixels = np.clip(img * light, 0, 255).astype(np.uint8)
    visible = []
    for k, inst in enumerate(instances, start=1):
        mask = (owner == k).astype(np.uint8)
        if np.count_nonzero(mask) >= 20:  # a hidden object is not in the scene
            visible.append(dict(inst, mask=mask))
    return pixels, site_name, visible


def read(collector: Collector, out_dir: Path, seed: int, settings: dict) -> None:
    """Generate the world into out_dir/world and feed it to the collector."""
    world = Path(out_dir) / "world"
    collector.root = world
    names = settings["classes"] + ([settings["context"]["name"]] if settings["context"] else [])
    class_ids = {name: i + 1 for i, name in enumerate(names)}
    for name, cid in class_ids.items():
        collector.add_category(cid, name, "synthetic")
    factors = []
    for index in range(settings["num_images"]):
        pixels, site, instances = render(index, seed, settings)
        rel = f"{site}/{index:06d}.jpg"
        write_bytes(world / rel, encode_jpeg(pixels, settings["jpeg_quality"]))
        image_id = index + 1
        collector.add_image(image_id, rel, "synthetic", (settings["width"], settings["height"]), group=site)
        factors.append(_factors(image_id, site, instances, settings))
        for k, inst in enumerate(instances):
            collector.add_annotation(
                image_id=image_id,
                category_id=class_ids[inst["class"]],
                bbox=masks.box_of(inst["mask"]),
                source_file="synthetic",
                record=f"image {image_id} instance {k}",
                segmentation=inst["mask"],
                labelled=inst["labelled"],
            )
    write_parquet(world / "factors.parquet", pa.Table.from_pylist(factors, schema=FACTORS_SCHEMA))


FACTORS_SCHEMA = pa.schema([
    ("image_id", pa.int64()),
    ("site", pa.string()),
    ("home_class", pa.string()),  # the class confounded with the site
    ("confounder_strength", pa.float64()),
    ("front_objects", pa.int32()),  # visible labelled objects in front
    ("front_home_class", pa.int32()),  # of which of the site's home class
    ("herd", pa.int32()),  # visible objects in the back (the herd)
    ("herd_unlabelled", pa.int32()),
    ("fully_labelled_site", pa.bool_()),
    ("object_size_px", pa.list_(pa.int32())),  # front objects' drawn sizes
    ("herd_size_px", pa.list_(pa.int32())),
    ("context_regions", pa.int32()),  # labelled context regions (ponds) drawn
])


def _factors(image_id: int, site: str, instances: list[dict], settings: dict) -> dict:
    """What generated one image, so any result can be traced back to its factors."""
    front = [i for i in instances if i["layer"] == "front"]
    herd = [i for i in instances if i["layer"] == "back"]
    home = home_class(site, settings)
    return {"image_id": image_id, "site": site, "home_class": home, "confounder_strength": float(settings["confounder_strength"]),
            "front_objects": len(front), "front_home_class": sum(i["class"] == home for i in front), "herd": len(herd),
            "herd_unlabelled": sum(not i["labelled"] for i in herd), "fully_labelled_site": site in settings["fully_labelled_sites"],
            "object_size_px": [i["size"] for i in front], "herd_size_px": [i["size"] for i in herd],
            "context_regions": sum(i["layer"] == "context" for i in instances)}
