"""How wide the ray-traced renderer's blur really is: the edge of a bright card at the far
end, rendered by POV-Ray focused at five planes, against the diameter that
``data.raytraced.choose_aperture`` aims at (``POVRAY_BLUR * K * |1/z - 1/f|``, K from the
thin-lens geometry of the aperture it sets) and the thin-lens diameter itself.

Usage: .venv/bin/python benchmarks/raytraced_blur.py
"""

from __future__ import annotations

import math

import numpy as np

from stackmff.data.pov_scene import PovScene, Solid
from stackmff.data.raytraced import CLEAN, POVRAY_BLUR, render_raytraced
from stackmff.io.colour import linear_from_perceptual


def main() -> None:
    scene = PovScene(width=128, height=128, fov=40.0, near=2.0, far=8.0, families=[],
                     solids=[], lights=[])
    scene.solids.append(Solid("box { <-10, -10, 0>, <0, 10, 0.01> }",
                              "texture { pigment { rgb 1 } finish { emission 1 diffuse 0 } }",
                              "translate <0, 0, 8>"))
    stack = render_raytraced(scene, 5, np.random.default_rng(3), CLEAN, samples=(64, 256))
    k = stack.aperture * scene.width / (2 * math.tan(math.radians(scene.fov) / 2))
    print("| focused at | thin-lens diameter (px) | target (px) | edge 2-98% (px) "
          "| edge 10-90% (px) |")
    print("|---:|---:|---:|---:|---:|")
    for layer, focus in enumerate(stack.focus):
        # in linear light, where a blurred edge is a straight ramp
        profile = linear_from_perceptual(stack.layers[layer].mean(axis=-1))[40:88].mean(axis=0)
        profile = (profile - profile.min()) / np.ptp(profile)
        wide = np.count_nonzero((profile > 0.02) & (profile < 0.98))
        narrow = np.count_nonzero((profile > 0.1) & (profile < 0.9))
        geometric = k * abs(1 / 8 - 1 / focus)
        print(f"| {focus:.2f} | {geometric:.1f} | {POVRAY_BLUR * geometric:.1f} | {wide} "
              f"| {narrow} |")


if __name__ == "__main__":
    main()
