"""Image probing and decoding: odd pixel formats, EXIF orientation, broken files, bombs."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from bgshift import images
from conftest import gradient_image, save_jpeg


def test_truncated_jpeg_is_rejected(tmp_path):
    path = save_jpeg(tmp_path / "a.jpg", gradient_image(200, 150))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(images.ImageProblem, match="corrupt JPEG: Premature end of JPEG file"):
        images.probe(path, max_pixels=10**8)


def test_garbage_file_and_missing_file_are_rejected(tmp_path):
    (tmp_path / "b.jpg").write_bytes(b"not an image at all")
    with pytest.raises(images.ImageProblem, match="unreadable"):
        images.probe(tmp_path / "b.jpg", max_pixels=10**8)
    with pytest.raises(images.ImageProblem, match="missing"):
        images.probe(tmp_path / "nope.jpg", max_pixels=10**8)


def test_oversized_image_is_rejected_from_its_header(tmp_path, monkeypatch):
    path = save_jpeg(tmp_path / "big.jpg", gradient_image(400, 300))
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded an image above the pixel limit"))
    with pytest.raises(images.ImageProblem, match="max_pixels"):
        images.probe(path, max_pixels=400 * 300 - 1)


@pytest.mark.parametrize("verify", [True, False])
def test_a_picture_only_in_its_alpha_channel_is_rejected(tmp_path, verify):
    """OpenCV reads the colour channels only: a shape drawn in alpha over flat black would become a
    black image with its boxes still labelled. Transparency over a real picture is fine."""
    rgba = np.zeros((60, 80, 4), np.uint8)
    rgba[10:40, 20:50, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "alpha_only.png")
    with pytest.raises(images.ImageProblem, match=r"only in its alpha channel \(the colour channels are flat 0\)"):
        images.probe(tmp_path / "alpha_only.png", max_pixels=10**8, verify=verify)
    Image.fromarray(rgba[..., 3], "L").convert("LA").save(tmp_path / "grey_alpha.png")  # LA whose alpha is flat
    images.probe(tmp_path / "grey_alpha.png", max_pixels=10**8, verify=verify)
    rgba[..., :3] = gradient_image(80, 60)
    Image.fromarray(rgba).save(tmp_path / "cut_out.png")
    assert images.probe(tmp_path / "cut_out.png", max_pixels=10**8, verify=verify).mode == "RGBA"


def test_whole_decode_names_a_cut_jpeg_and_a_size_ingest_did_not_record(tmp_path):
    path = save_jpeg(tmp_path / "a.jpg", gradient_image(200, 150))
    assert images.read_rgb_whole(path, 150, 200).shape == (150, 200, 3)
    with pytest.raises(images.ImageProblem, match="decodes to 200x150, ingest recorded 100x150"):
        images.read_rgb_whole(path, 150, 100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(images.ImageProblem, match="corrupt JPEG: Premature end of JPEG file"):
        images.read_rgb_whole(path, 150, 200)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "CMYK", "P"])
def test_pixel_formats_become_8bit_rgb(tmp_path, mode):
    rgb = gradient_image(64, 48)
    if mode == "I;16":
        im = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
        path = tmp_path / "a.png"
    elif mode == "CMYK":
        im = Image.fromarray(rgb).convert("CMYK")
        path = tmp_path / "a.jpg"
    else:
        im = Image.fromarray(rgb).convert(mode)
        path = tmp_path / "a.png"
    im.save(path)
    info = images.probe(path, max_pixels=10**8)
    assert info.mode == mode and (info.width, info.height) == (64, 48)
    out = images.read_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    reference = np.asarray(Image.open(path).convert("RGB")) if mode != "I;16" else np.repeat(rgb[..., :1], 3, -1)
    tolerance = 12 if mode == "CMYK" else 1  # JPEG round trip
    assert np.abs(out.astype(int) - reference.astype(int)).mean() <= tolerance


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_for_pixels_points_and_masks(tmp_path, orientation):
    rgb = gradient_image(90, 60)
    path = save_jpeg(tmp_path / "r.jpg", rgb, exif_orientation=orientation, quality=100)
    info = images.probe(path, max_pixels=10**8)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert (info.height, info.width) == expected.shape[:2]
    decoded = images.read_rgb(path)
    assert decoded.shape == expected.shape
    assert np.abs(decoded.astype(int) - expected.astype(int)).mean() < 2
    # A one-pixel mask and the corresponding point land at the same place once oriented.
    mask = np.zeros((60, 90), np.uint8)
    mask[10, 70] = 1
    oriented = images.orient_mask(mask, orientation)
    ys, xs = np.nonzero(oriented)
    px, py = images.orient_points(np.array([70.5]), np.array([10.5]), orientation, 90, 60)
    assert (int(np.floor(px[0])), int(np.floor(py[0]))) == (xs[0], ys[0])
