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
            if "A" in im.getbands():
                _refuse_picture_only_in_alpha(im)
    except ImageProblem:
        raise
    except Exception as exc:  # Pillow raises many types for broken files
        raise ImageProblem(f"unreadable image: {type(exc).__name__}: {exc}") from None
    if orientation not in range(1, 9):
        orientation = 1
    w, h = (raw_h, raw_w) if orientation in TRANSPOSING_ORIENTATIONS else (raw_w, raw_h)
    return ImageInfo(w, h, raw_w, raw_h, orientation, mode, fmt)


def _refuse_picture_only_in_alpha(im: Image.Image) -> None:
    """Every stage reads the colour channels (OpenCV drops alpha), so an image drawn only in its
    alpha channel over flat colour would become one flat colour with its boxes still labelled."""
    *colours, alpha = im.getextrema()
    if all(low == high for low, high in colours) and alpha[0] != alpha[1]:
        raise ImageProblem(f"its picture is only in its alpha channel (the colour channels are flat {colours[0][0]}): "
                           f"flatten it onto a background first")


ORIENTATION_NAMES = {2: "mirrored", 3: "rotated 180 degrees", 4: "flipped", 5: "transposed", 6: "rotated 90 degrees",
                     7: "transversed", 8: "rotated 270 degrees"}


def labelled_on_stored_pixels(info: ImageInfo, declared: tuple[int, int] | None, frame: str) -> bool:
    """Whether an image's annotations were drawn on its stored pixels (True) or on the EXIF-oriented
    ones (False), by `frame` (ingest.annotation_frame) or, under auto, by the size the annotation
    file declares. Raises ImageProblem when the declared size fits neither frame, or when under auto
    it fits both of an image that EXIF turns (a flip, a half turn, a square quarter turn): a box
    placed in the wrong frame would sit on the wrong pixels with no sign of it."""
    stored, oriented = (info.raw_width, info.raw_height), (info.width, info.height)
    if declared is None or info.orientation == 1:  # normalised (YOLO) labels, or nothing to turn
        if declared is not None and declared != stored:
            raise ImageProblem(f"annotation says {declared[0]}x{declared[1]} but the file is {stored[0]}x{stored[1]}")
        return frame == "stored" and info.orientation != 1
    fits = {"stored": declared == stored, "oriented": declared == oriented}
    if frame == "auto" and all(fits.values()):
        raise ImageProblem(f"EXIF orientation {info.orientation} ({ORIENTATION_NAMES[info.orientation]}) keeps the size "
                           f"{oriented[0]}x{oriented[1]}, so its annotations may be on the stored or the turned pixels: "
                           f"set ingest.annotation_frame to stored or oriented")
    chosen = frame if frame != "auto" else "stored" if fits["stored"] else "oriented"
    if not fits[chosen]:
        size = stored if chosen == "stored" else oriented
        raise ImageProblem(f"annotation says {declared[0]}x{declared[1]} but the file is {size[0]}x{size[1]}"
                           + (f" ({chosen} pixels, ingest.annotation_frame)" if frame != "auto" else ""))
    return chosen == "stored"


def _decode_telling(path: Path, flags: int) -> tuple[np.ndarray | None, str]:
    """cv2.imread's pixels and what the codec wrote to the process's stderr meanwhile (libjpeg's
    "premature end of data segment" and the like are only warnings to it, and a cut file
    decodes to a grey half)."""
    with tempfile.TemporaryFile() as err:
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            pixels = cv2.imread(str(path), flags)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        return pixels, " ".join(err.read().decode("utf-8", "replace").split())[:200]


def libjpeg_complaint(path: Path) -> str:
    """What libjpeg says while decoding a JPEG ('' if nothing). The decode is DCT-scaled to 1/8,
    which still reads the whole entropy-coded stream."""
    pixels, text = _decode_telling(path, cv2.IMREAD_REDUCED_COLOR_8)
    return text or ("" if pixels is not None else "libjpeg could not decode it")


def read_rgb_whole(path: str | Path, height: int, width: int) -> np.ndarray:
    """read_rgb for the first stage that decodes every image (segmentation): a JPEG libjpeg warns
    about, a file OpenCV cannot decode, or pixels of another size than ingest recorded raise
    ImageProblem, so an image ingest did not verify (ingest.verify_images: false) is rejected by
    name instead of passing on as a grey half."""
    with open(path, "rb") as head:
        jpeg = head.read(3) == b"\xff\xd8\xff"
    bgr, complaint = _decode_telling(Path(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageProblem("unreadable image: OpenCV could not decode it")
    if jpeg and complaint:  # other codecs also warn of harmless things (libpng of sRGB profiles)
        raise ImageProblem(f"corrupt JPEG: {complaint}")
    if bgr.shape[:2] != (height, width):
        raise ImageProblem(f"decodes to {bgr.shape[1]}x{bgr.shape[0]}, ingest recorded {width}x{height}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


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
