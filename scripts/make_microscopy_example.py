"""Render the microscopy example: examples/microscopy/cells.ome.tif.

Two channels of cells at random depths, as a widefield microscope sees them (see
stackmff.data.specimens): channel 0 "Hoechst" (nuclei), channel 1 "membrane" (rings and
filaments); 12 planes 0.4 µm apart starting at 20 µm, 0.2 µm pixels, 12-bit values in
uint16. Run from the repository root: python scripts/make_microscopy_example.py
"""

from pathlib import Path

import numpy as np
import tifffile

from stackmff.data.specimens import fluorescence_stack

OUT = Path("examples/microscopy/cells.ome.tif")
PLANES, SIZE, STEP, ORIGIN = 12, 160, 0.4, 20.0


def main() -> None:
    stack, _ = fluorescence_stack(PLANES, SIZE, SIZE, seed=7)
    data = np.rint(stack * 4095).astype(np.uint16)[None]  # (T, C, Z, Y, X), 12 bit
    metadata = {
        "axes": "TCZYX", "PhysicalSizeX": 0.2, "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": 0.2, "PhysicalSizeYUnit": "µm",
        "PhysicalSizeZ": STEP, "PhysicalSizeZUnit": "µm",
        "Channel": {"Name": ["Hoechst", "membrane"], "Color": [0x0080FFFF, 0x00FF00FF]},
        "Plane": {"PositionZ": [ORIGIN + STEP * z for _ in range(2) for z in range(PLANES)]},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(OUT, data, ome=True, photometric="minisblack", compression="zlib",
                     metadata=metadata)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
