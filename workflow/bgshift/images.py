"""Reading, checking and encoding images: one decode path for every stage.

Canonical pixels are 8-bit RGB with the EXIF orientation applied. OpenCV's
`imread(IMREAD_COLOR)` already does exactly that for grayscale, RGBA, 16-bit, CMYK
and rotated JPEGs, so later stages decode with it; ingest probes with Pillow first
because Pillow reads the header (size, mode, orientation) without decoding, which
lets oversized images be rejected before they are decompressed.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# Pillow's own bomb guard raises at 2x its limit; ours is checked from the header
# first, so Pillow's is lifted to avoid two different messages for one problem.
Image.MAX_IMAGE_PIXELS = None

# EXIF orientations 5..8 swap width and height.
TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


class ImageProblem(Exception):
    """An image that cannot be used; the message is the reject reason."""


@dataclass(frozen=True)
class ImageInfo:
    width: int  # after EXIF orientation
    height: int
    raw_width: int  # as stored in the file
    raw_height: int
    orientation: int  # EXIF orientation tag, 1 when absent
    mode: str  # Pillow mode of the stored pixels (L, RGB, RGBA, I;16, CMYK, ...)
    format: str


def probe(path: Path, max_pixels: int, verify: bool = True) -> ImageInfo:
    """Read an image's header, refuse it if too large, and (optionally) decode it fully.

    Raises ImageProblem with a reason suitable for the rejects table.
    """
    if not path.is_file():
        raise ImageProblem("image file missing")
    try:
        with Image.open(path) as im:
            raw_w, raw_h = im.size
            if raw_w * raw_h > max_pixels:
                raise ImageProblem(
                    f"image has {raw_w}x{raw_h}={raw_w * raw_h} pixels, above ingest.max_pixels={max_pixels}"
                )
            orientation = int(im.getexif().get(0x0112, 1) or 1)
            mode, fmt = im.mode, im.format or "unknown"
            if not cv2.haveImageReader(str(path)):  # every later stage decodes with OpenCV
                raise ImageProblem(f"a {fmt} image, which OpenCV does not decode: convert it to JPEG or PNG")
            if verify and fmt == "JPEG":
                complaint = libjpeg_complaint(path)
                if complaint:
                    raise ImageProblem(f"corrupt JPEG: {complaint}")
            elif verify:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    im.load()
    except ImageProblem:
        raise
    except Exception as exc:  # Pillow raises many types for broken files
        raise ImageProblem(f"unreadable image: {type(exc).__name__}: {exc}") from None
    if orientation not in range(1, 9):
        orientation = 1
    w, h = (raw_h, raw_w) if orientation in TRANSPOSING_ORIENTATIONS else (raw_w, raw_h)
    return ImageInfo(w, h, raw_w, raw_h, orientation, mode, fmt)


def libjpeg_complaint(path: Path) -> str:
    """What libjpeg says while decoding a JPEG ('' if nothing): "premature end of data segment"
    and the like are only warnings to it, and a cut file would decode to a grey half. The
    decode is DCT-scaled to 1/8, which still reads the whole entropy-coded stream."""
    with tempfile.TemporaryFile() as err:  # libjpeg writes its warnings to the process's stderr
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            pixels = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_8)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        text = " ".join(err.read().decode("utf-8", "replace").split())[:200]
    return text or ("" if pixels is not None else "libjpeg could not decode it")


def read_bgr(path: str | Path) -> np.ndarray:
    """Decode to 8-bit BGR (OpenCV's order, HxWx3 uint8) with EXIF orientation applied."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageProblem(f"OpenCV could not decode {path}")
    return bgr


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode to 8-bit RGB (HxWx3 uint8) with EXIF orientation applied."""
    return cv2.cvtColor(read_bgr(path), cv2.COLOR_BGR2RGB)


def decode_rgb(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageProblem("OpenCV could not decode image bytes")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_jpeg_bgr(bgr: np.ndarray, quality: int) -> bytes:
    """JPEG-encode BGR pixels (libjpeg-turbo via OpenCV; deterministic bytes)."""
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ImageProblem("JPEG encoding failed")
    return buf.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG-encode RGB pixels."""
    return encode_jpeg_bgr(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), quality)


def encode_png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageProblem("PNG encoding failed")
    return buf.tobytes()


def orient_points(x: np.ndarray, y: np.ndarray, orientation: int, raw_w: int, raw_h: int):
    """Map point coordinates in the stored frame to the EXIF-oriented frame.

    Coordinates are continuous (pixel edges at integers), matching COCO boxes and
    polygons, so a flip maps x to raw_w - x.
    """
    W, H = raw_w, raw_h
    mapping = {
        1: lambda: (x, y),
        2: lambda: (W - x, y),
        3: lambda: (W - x, H - y),
        4: lambda: (x, H - y),
        5: lambda: (y, x),
        6: lambda: (H - y, x),
        7: lambda: (H - y, W - x),
        8: lambda: (y, W - x),
    }
    return mapping[orientation]()


def orient_mask(mask: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to a mask stored in the raw frame."""
    ops = {
        1: lambda m: m,
        2: lambda m: m[:, ::-1],
        3: lambda m: m[::-1, ::-1],
        4: lambda m: m[::-1, :],
        5: lambda m: m.T,
        6: lambda m: m.T[:, ::-1],
        7: lambda m: m.T[::-1, ::-1],
        8: lambda m: m.T[::-1, :],
    }
    return np.ascontiguousarray(ops[orientation](mask))
