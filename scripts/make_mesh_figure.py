"""Make docs/mesh_figure.jpg (the surface of examples/pcb, rendered) and docs/napari_3d.png
(napari's window with the 3D view), both through napari's own OpenGL canvas.

Headless: run under a virtual X server with Mesa (scripts/setup_gui.sh installs them):
    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python scripts/make_mesh_figure.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import napari
import numpy as np
from PIL import Image
from qtpy.QtWidgets import QApplication

from stackmff.napari.widget import FuseWidget

ROOT = Path(__file__).resolve().parents[1]
EXAGGERATION = 15.0  # pixels of height per layer: the board is 7 layers deep and 768 px wide
VIEW = (1.0, 0.9, 0.25)  # (z, y, x): from the near side (layer 0), over the board's bottom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="depthmap")
    parser.add_argument("--view", type=float, nargs=3, default=VIEW,
                        help="the direction the camera looks along, (z, y, x) in data axes")
    parser.add_argument("--exaggeration", type=float, default=EXAGGERATION)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "mesh_figure.jpg")
    args = parser.parse_args()
    viewer = napari.Viewer(title="stackmff")
    [stack] = viewer.open(str(ROOT / "examples" / "pcb"), plugin="stackmff")
    widget = FuseWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fuse focus stack")
    widget.stack.reset_choices()
    widget.stack.value = stack
    widget.method.value = args.method
    widget.fuse()
    while widget.busy:
        QApplication.processEvents()
    surface = widget.show_surface()
    if surface is None:
        raise SystemExit(widget.status.value)
    surface.scale = (args.exaggeration, 1.0, 1.0)
    surface.shading = "none"  # the photo's own light
    for layer in viewer.layers:
        layer.visible = layer is surface
    viewer.window.resize(1500, 900)
    viewer.reset_view()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.set_view_direction(tuple(args.view), up_direction=(0.0, -1.0, 0.0))
    camera.zoom *= 1.1
    canvas = viewer.screenshot(canvas_only=True, flash=False)[..., :3]
    figure = args.out
    Image.fromarray(_trimmed(canvas)).save(figure, quality=88)
    window = viewer.screenshot(canvas_only=False, flash=False)[..., :3]
    Image.fromarray(window).quantize(256).save(ROOT / "docs" / "napari_3d.png", optimize=True)
    print(f"wrote {figure} and docs/napari_3d.png")
    viewer.close()


def _trimmed(image: np.ndarray, margin: int = 12) -> np.ndarray:
    """The picture cut to what is not background, with a margin."""
    background = image[0, 0].astype(int)
    differs = np.abs(image.astype(int) - background).sum(axis=2) > 24
    rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    if not len(rows):
        return image
    top, bottom = max(rows[0] - margin, 0), min(rows[-1] + margin, image.shape[0])
    left, right = max(cols[0] - margin, 0), min(cols[-1] + margin, image.shape[1])
    return image[top:bottom, left:right]


if __name__ == "__main__":
    main()
