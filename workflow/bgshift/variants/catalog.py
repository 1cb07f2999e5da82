"""How each variant family draws: a pure function of (image context, spec, rng) (the context:
context.py; pixels and composites: drawing.py; the families' records: families.py; the objects a
variant keeps, in its frame: objects.py).

A variant returns its image and says what happens to the objects (kept, removed,
only the labelled ones, or moved by a crop). Expensive intermediates (the tiled
background, blurs, masks) live on the ImageContext and are computed once per image,
however many variants use them. Most variants return a `Composite`, a recipe (top,
bottom, mask, soft edge) rather than pixels: `Result.pixels` draws it into a fresh array,
the engine into one reused `Canvas` (composites over the same bottom rewrite only the
region the previous one changed, not the whole frame). Pasting is `cv2.copyTo`, so pixels
that a variant does not change stay bit-identical to the source.

Pixels are BGR, OpenCV's order, from decode to encode: the engine never spends time
converting channels. Colours in the config and in provenance are RGB.

Read-only arrays are shared, never written: the decoded source, solid colours, and what a
variant returns when it changes nothing (an unl_* variant of an image without hidden
objects is the source itself). `identity` lets the engine encode the same pixels once
however many variants reach them.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .context import Donor
from .drawing import Composite, patch_fill, solid


@dataclass
class Result:
    image: np.ndarray | Composite
    objects: str = "all"  # all | none (background only) | visible (all but `hidden`) | crop
    hidden: frozenset[int] = frozenset()  # instances covered by an unl_* variant
    crop: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 when objects == "crop"
    donor: Donor | None = None
    background: str | None = None  # what replaced the background, when it is named

    @property
    def pixels(self) -> np.ndarray:
        """The variant's pixels (a composite drawn into a fresh array)."""
        return self.image.draw() if isinstance(self.image, Composite) else self.image



# ------------------------------------------------------------------ the draw functions
def original(ctx, p, rng):
    return Result(ctx.pixels)


def only_bg_b(ctx, p, rng):
    return Result(ctx.composite(solid(ctx.shape, (0, 0, 0)), ctx.pixels, ctx.boxes_mask, p["feather"]), objects="none")


def only_bg_t(ctx, p, rng):
    return Result(ctx.composite(ctx.tiled_background, ctx.pixels, ctx.boxes_mask, p["feather"]), objects="none")


def no_fg(ctx, p, rng):
    return Result(ctx.composite(solid(ctx.shape, (0, 0, 0)), ctx.pixels, ctx.foreground, p["feather"]), objects="none")


def only_fg(ctx, p, rng):
    return Result(ctx.composite(ctx.pixels, solid(ctx.shape, p["colour"]), ctx.foreground, p["feather"]), background=f"colour {tuple(p['colour'])}")


def mixed(ctx, p, rng):
    donor = ctx.donors[p["family"]]
    bg = donor.background if donor.background.shape[:2] == ctx.shape else cv2.resize(donor.background, ctx.shape[::-1], interpolation=cv2.INTER_AREA)
    return Result(ctx.composite(ctx.pixels, bg, ctx.foreground, p["feather"]), donor=donor)


def bg_color(ctx, p, rng):
    return Result(ctx.composite(ctx.pixels, solid(ctx.shape, p["colour"]), ctx.foreground, p["feather"]), background=p["label"])


def bg_mean(ctx, p, rng):
    if p["per_pixel"]:
        return Result(ctx.composite(ctx.pixels, ctx.fitted(ctx.mean_image), ctx.foreground, p["feather"]), background="mean image")
    return Result(ctx.composite(ctx.pixels, solid(ctx.shape, ctx.mean_colour), ctx.foreground, p["feather"]), background="mean colour")


def bg_noise(ctx, p, rng):
    h, w = ctx.shape
    noise = np.frombuffer(rng.bytes(h * w), np.uint8).reshape(h, w) >> 7  # one fair random bit per pixel
    return Result(ctx.composite(ctx.pixels, cv2.cvtColor(noise * np.uint8(255), cv2.COLOR_GRAY2BGR), ctx.foreground, p["feather"]), background="noise")


def bg_blur(ctx, p, rng):
    return Result(ctx.composite(ctx.pixels, ctx.blurred(p["sigma"]), ctx.foreground, p["feather"]))


def bg_crop(ctx, p, rng):
    """Crop to the objects' region expanded by `margin` pixels (whole image when there are none)."""
    h, w = ctx.shape
    if ctx.objects_region is None:
        return Result(ctx.pixels)
    m = int(p["margin"])
    x0, y0, x1, y1 = ctx.objects_region
    x0, y0, x1, y1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
    if (x0, y0, x1, y1) == (0, 0, w, h):  # objects reaching every border (a third of COCO at margin 64)
        return Result(ctx.pixels)  # the source itself: the engine reuses `original`'s bytes and objects
    return Result(ctx.pixels[y0:y1, x0:x1], objects="crop", crop=(x0, y0, x1, y1))  # a read-only view: the encoder reads strided rows


def bg_scene(ctx, p, rng):
    return Result(ctx.composite(ctx.pixels, ctx.fitted(ctx.scenes[p["scene"]]), ctx.foreground, p["feather"]), background=p["scene"])


def bg_pool(ctx, p, rng):
    """The objects on a picture drawn from a pool of unrelated scenes (seeded per image and
    variant; its name recorded as the background), as the deck's generic backgrounds."""
    names = sorted(p["pool"])
    chosen = names[int(rng.integers(len(names)))]
    return Result(ctx.composite(ctx.pixels, ctx.fitted(ctx.scenes[chosen]), ctx.foreground, p["feather"]), background=chosen)


def bg_gray(ctx, p, rng):
    return Result(ctx.composite(ctx.pixels, ctx.gray, ctx.foreground, p["feather"]))


def unl_black(ctx, p, rng):
    hidden = ctx.hidden(p.get("drop"))
    mask = ctx.hidden_mask(hidden)
    return Result(ctx.composite(solid(ctx.shape, (0, 0, 0)), ctx.pixels, mask, p["feather"]), objects="visible", hidden=hidden)


def unl_color(ctx, p, rng):
    hidden = ctx.hidden(p.get("drop"))
    colour = rng.integers(0, 256, 3)
    return Result(ctx.composite(solid(ctx.shape, colour), ctx.pixels, ctx.hidden_mask(hidden), p["feather"]), objects="visible",
                  hidden=hidden, background=f"colour {tuple(int(c) for c in colour)}")


def unl_patch(ctx, p, rng):
    """Unlabelled objects covered by real background: a patch from elsewhere in the same image, or
    with `textures`, a texture picture drawn (seeded) from that folder (the sheep study's grass)."""
    hidden = ctx.hidden(p.get("drop"))
    mask = ctx.hidden_mask(hidden)
    if p.get("pool"):
        names = sorted(p["pool"])
        texture = names[int(rng.integers(len(names)))]
        return Result(ctx.composite(ctx.fitted(ctx.scenes[texture]), ctx.pixels, mask, p["feather"]), objects="visible",
                      hidden=hidden, background=texture)
    patched = patch_fill(ctx, mask, rng)  # differs from the image only inside the mask: the hard-edged composite itself
    return Result(ctx.composite(patched, ctx.pixels, mask, p["feather"]) if p["feather"] > 0 else patched, objects="visible",
                  hidden=hidden)


def unl_blur(ctx, p, rng):
    hidden = ctx.hidden(p.get("drop"))
    return Result(ctx.composite(ctx.blurred(p["sigma"]), ctx.pixels, ctx.hidden_mask(hidden), p["feather"]), objects="visible", hidden=hidden)
