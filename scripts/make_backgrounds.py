"""Write the background pool (resources/pool/): small pictures generated here, seeded, so their
origin is this script and their licence the project's. Run: python scripts/make_backgrounds.py"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "resources" / "pool"
SIZE = (240, 320)  # height, width


def noise(rng: np.random.Generator, scale: float) -> np.ndarray:
    """Smooth value noise in [0, 1] at a given feature size (pixels)."""
    small = rng.random((max(2, int(SIZE[0] / scale)), max(2, int(SIZE[1] / scale))))
    return cv2.resize(small, SIZE[::-1], interpolation=cv2.INTER_CUBIC).clip(0, 1)


def tinted(base: np.ndarray, low: tuple[int, int, int], high: tuple[int, int, int]) -> np.ndarray:
    """A [0, 1] field mapped between two RGB colours."""
    low_, high_ = np.array(low, np.float32), np.array(high, np.float32)
    return (low_ + base[..., None] * (high_ - low_)).astype(np.uint8)


def pictures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = np.linspace(0, 1, SIZE[0])[:, None] * np.ones(SIZE[1])
    return {
        "snowfield": tinted(0.7 * noise(rng, 40) + 0.3 * noise(rng, 4), (200, 205, 215), (250, 250, 255)),
        "forest_floor": tinted(0.6 * noise(rng, 12) + 0.4 * noise(rng, 3), (40, 30, 15), (110, 85, 40)),
        "asphalt": tinted(0.5 * noise(rng, 2) + 0.5 * noise(rng, 30), (55, 55, 60), (120, 120, 125)),
        "lake": tinted(0.8 * rows + 0.2 * noise(rng, 20), (120, 170, 210), (20, 60, 110)),
        "dunes": tinted(0.5 + 0.5 * np.sin(rows * 18 + 3 * noise(rng, 60)) * 0.8, (190, 150, 90), (240, 210, 150)),
        "brick_wall": tinted(((np.indices(SIZE)[0] % 24 < 2) | ((np.indices(SIZE)[1] + 20 * (np.indices(SIZE)[0] // 24 % 2)) % 40 < 2))
                             * 0.8 + 0.2 * noise(rng, 3), (150, 60, 45), (210, 200, 190)),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rgb in pictures(np.random.default_rng(2026)).items():
        cv2.imwrite(str(OUT / f"{name}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"{len(list(OUT.glob('*.jpg')))} pictures in {OUT}")


if __name__ == "__main__":
    main()
