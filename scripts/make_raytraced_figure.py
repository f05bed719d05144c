"""docs/raytraced_scene.jpg: one ray-traced training scene: three of its five layers, the
pinhole truth, the depth pass and the label the depth gives.

Usage: .venv/bin/python scripts/make_raytraced_figure.py [OUT] (needs POV-Ray and the Debian
training photos: scripts/setup_training.sh)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from stackmff.data.export import read_synthetic_stack, write_synthetic_stacks

SIZE, LAYERS, SEED, INDEX = 256, 5, 0, 0


def tile(image: np.ndarray, caption: str) -> Image.Image:
    picture = Image.fromarray(np.clip(image * 255, 0, 255).astype(np.uint8)).convert("RGB")
    canvas = Image.new("RGB", (SIZE, SIZE + 22), "white")
    canvas.paste(picture, (0, 22))
    ImageDraw.Draw(canvas).text((4, 5), caption, fill="black")
    return canvas


def coloured(values: np.ndarray) -> np.ndarray:
    scaled = np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB) / 255


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/raytraced_scene.jpg")
    with tempfile.TemporaryDirectory() as work:
        done = write_synthetic_stacks(work, INDEX + 1, LAYERS, SIZE, "raytraced", seed=SEED,
                                      held_out=False)
        stack = read_synthetic_stack(done.folders[INDEX])
    info, layers = stack["info"], stack["layers"] / 65535
    inverse = 1 / stack["depth"]
    focus = info["focus"]
    tiles = [tile(layers[k], f"layer {k}: focused at {focus[k]:.2f}") for k in (0, 2, 4)]
    tiles += [tile(stack["truth"] / 65535, "pinhole render (truth)"),
              tile(coloured((inverse - inverse.min()) / np.ptp(inverse)),
                   "depth pass (inverse depth)"),
              tile(coloured(stack["focus_map"] / (LAYERS - 1)), "label: nearest focus plane")]
    figure = Image.new("RGB", (3 * SIZE + 8, 2 * (SIZE + 22) + 4), "white")
    for i, t in enumerate(tiles):
        figure.paste(t, ((i % 3) * (SIZE + 4), (i // 3) * (SIZE + 26)))
    figure.save(out, quality=88)
    print(f"wrote {out}: families {', '.join(info['families'])}")


if __name__ == "__main__":
    main()
