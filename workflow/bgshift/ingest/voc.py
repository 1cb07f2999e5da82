"""Pascal VOC: one XML per image, optional SegmentationObject instance PNGs."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from .. import images
from .collector import Collector, IngestError


def parse_xml(path: Path) -> ET.Element:
    """Parse an XML file; a syntax error names the file, line and column."""
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        raise IngestError(f"{path}: malformed XML at line {line}, column {col}: {exc}") from None


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


def _flag(obj: ET.Element, name: str) -> bool:
    return (obj.findtext(name) or "0").strip() in ("1", "true", "True")


def _split_lists(root: Path, image_sets: dict[str, str]) -> dict[str, str]:
    """stem -> split name from ImageSets-style lists (first line token is the stem)."""
    split_of: dict[str, str] = {}
    for split, rel in sorted(image_sets.items()):
        for line in (root / rel).read_text(encoding="utf-8").splitlines():
            if line.strip():
                split_of.setdefault(line.split()[0], split)
    return split_of


def instance_masks(png: Path, count: int, max_pixels: int) -> list[np.ndarray | None]:
    """VOC SegmentationObject: pixel value i+1 is the i-th object of the XML; 255 is the void border.
    The size is checked from the header before decoding (a small file can declare a huge image)."""
    images.probe(png, max_pixels, verify=False)
    try:
        with Image.open(png) as im:
            labels = np.asarray(im)
    except Exception as exc:  # Pillow raises many types for broken files
        raise images.ImageProblem(f"unreadable mask: {type(exc).__name__}: {exc}") from None
    return [(labels == i + 1).astype(np.uint8) if np.any(labels == i + 1) else None for i in range(count)]


def read(collector: Collector, root: Path, annotations_dir: str, images_dir: str, segmentation_dir: str,
         image_sets: dict[str, str], classes: list[str] | None) -> None:
    root = Path(root)
    xml_files = sorted((root / annotations_dir).glob("*.xml"))
    if not xml_files:
        raise IngestError(f"{root / annotations_dir}: no .xml annotation files found")
    parsed = [(path, parse_xml(path)) for path in xml_files]
    names = classes or sorted({(obj.findtext("name") or "").strip() for _, xml in parsed for obj in xml.iter("object")} - {""})
    category_of = {name: i + 1 for i, name in enumerate(names)}
    for name, cid in category_of.items():
        collector.add_category(cid, name, source=str(root / annotations_dir))
    split_of = _split_lists(root, image_sets)
    for image_id, (path, xml) in enumerate(parsed, start=1):
        file_name = (xml.findtext("filename") or f"{path.stem}.jpg").strip()
        w, h = _int_or_none(xml.findtext("size/width")), _int_or_none(xml.findtext("size/height"))
        declared = (w, h) if w and h else None
        entry = collector.add_image(image_id, f"{images_dir}/{file_name}", str(path), declared, split=split_of.get(path.stem))
        objects = list(xml.iter("object"))
        png = root / segmentation_dir / f"{path.stem}.png"
        masks = [None] * len(objects)
        if entry is not None and png.is_file():
            try:
                masks = instance_masks(png, len(objects), collector.max_pixels)
            except images.ImageProblem as exc:
                collector.reject("mask", png, path.stem, "segmentation", f"masks dropped, boxes kept: {exc}")
        for index, (obj, mask) in enumerate(zip(objects, masks)):
            name = (obj.findtext("name") or "").strip()
            coords = [obj.findtext(f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax")]
            try:
                x0, y0, x1, y1 = (float(c) for c in coords)
                bbox = [x0 - 1.0, y0 - 1.0, x1 - x0 + 1.0, y1 - y0 + 1.0]  # VOC corners are 1-based, inclusive
                point = x0 == x1 and y0 == y1
            except (TypeError, ValueError):
                bbox, point = coords, False
            if point:
                collector.counts["annotations_input"] += 1
                collector.reject("annotation", path, f"object {index} ({name or 'no name'})", "bndbox",
                                 f"point box: xmin == xmax and ymin == ymax ({coords}), not an object's extent")
                continue
            collector.add_annotation(
                image_id=image_id,
                category_id=category_of.get(name, -1),
                bbox=bbox,
                source_file=str(path),
                record=f"object {index} ({name or 'no name'})",
                segmentation=mask,
                difficult=_flag(obj, "difficult"),
                truncated=_flag(obj, "truncated"),
            )
