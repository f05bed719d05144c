"""docs/microscopy_figure.jpg: the microscopy example as a maximum intensity projection,
fused (focus decided on the nuclei, both channels gathered), and its height map in µm.

Run from the repository root: python scripts/make_microscopy_figure.py
"""

from pathlib import Path

import cv2
import numpy as np

import stackmff
from stackmff.microscopy import open_source

EXAMPLE = Path("examples/microscopy/cells.ome.tif")
OUT = Path("docs/microscopy_figure.jpg")
SCALE = 2


def composite(channels: np.ndarray, colors: list[str], tops: np.ndarray) -> np.ndarray:
    """Channels (C, Y, X) blended in their colours, as 8-bit BGR."""
    rgb = np.zeros(channels.shape[1:] + (3,), np.float32)
    for plane, color, top in zip(channels, colors, tops):
        weight = np.array([int(color[i:i + 2], 16) / 255 for i in (0, 2, 4)], np.float32)
        rgb += np.clip(plane / top, 0, 1)[..., None] * weight
    return cv2.cvtColor((np.clip(rgb, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def titled(image: np.ndarray, title: str) -> np.ndarray:
    image = cv2.resize(image, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)
    strip = np.full((28, image.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.vstack([strip, image])


def main() -> None:
    with open_source(EXAMPLE) as source:
        stack = source.read(0, 0)  # (C, Z, Y, X)
        metadata = source.metadata
    result = stackmff.fuse_stack(stack[None], axes="TCZYX", focus_channel="mean",
                                 metadata=metadata)
    fused, heights = result.fused[0].astype(np.float32), result.heights[0]
    tops = np.percentile(fused, 99.8, axis=(1, 2))
    colors = [c or "FFFFFF" for c in metadata.colors(stack.shape[0])]
    mip = composite(stack.max(axis=1).astype(np.float32), colors, tops)
    low, high = metadata.z_origin, metadata.z_origin + metadata.size_z * (stack.shape[1] - 1)
    scaled = ((heights - low) / (high - low) * 255).astype(np.uint8)
    height_map = cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS)
    panels = [titled(mip, "maximum intensity projection"),
              titled(composite(fused, colors, tops), "fused (focus on both channels)"),
              titled(height_map, f"height {low:.1f} (dark) to {high:.1f} um")]
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    figure = np.hstack([panels[0], gap, panels[1], gap, panels[2]])
    cv2.imwrite(str(OUT), figure, [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
