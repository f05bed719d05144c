"""Does a change keep the fused files byte for byte? Fuse the same stacks with two versions of
the code and compare the files.

Usage: .venv/bin/python benchmarks/same_outputs.py BEFORE_SRC AFTER_SRC [--workdir DIR]

BEFORE_SRC and AFTER_SRC are ``src`` folders of two checkouts (e.g. ``git archive <commit> src
| tar -x -C /tmp/before``). Renders, with fixed seeds, 16-bit colour PNG, 8-bit grey PNG,
mixed (16-bit colour with one 8-bit grey file) and 8-bit colour JPEG stacks, fuses each with
depthmap (with its confidence, and with --halo), pyramid, v3 fp32, v3 bf16, tiled v3, v3 with
--blend soft and band, and v3+ (fused image and focus map) as whole `stackmff fuse`
processes of each version; then a two-channel 16-bit OME-TIFF (with --height-map, focus map
and confidence), a batch of two stacks, and a `regather` of an edited map. Prints every file
that differs (the batch's timing report aside; an OME-TIFF's random UUID is not compared).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from stackmff.testing import make_stack

COMMANDS = {
    "depthmap": ["-m", "depthmap"],
    "pyramid": ["-m", "pyramid"],
    "v3-fp32": ["-m", "v3", "--precision", "fp32"],
    "v3-bf16": ["-m", "v3", "--precision", "bf16"],
    "v3-tiled": ["-m", "v3", "--precision", "fp32", "--tile", "128", "--tile-margin", "64"],
    "v3-soft": ["-m", "v3", "--blend", "soft"],
    "v3-band": ["-m", "v3", "--blend", "band"],
    "v3plus": ["-m", "v3+"],
    "depthmap-halo": ["-m", "depthmap", "--halo"],
}
# commands that also write the confidence
WITH_CONFIDENCE = ("depthmap", "v3-band")


def write(folder: Path, layers: np.ndarray, dtype, suffix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    top = np.iinfo(dtype).max
    paths = []
    for k, layer in enumerate(layers):
        pixels = np.rint(layer * top).astype(dtype)
        if pixels.ndim == 3:
            pixels = pixels[..., ::-1]  # OpenCV writes BGR
        paths.append(folder / f"layer_{k}{suffix}")
        cv2.imwrite(str(paths[-1]), pixels)
    return paths


def render(root: Path) -> list[Path]:
    write(root / "png16", make_stack(6, 300, 420, colour=True, seed=3)[0], np.uint16, ".png")
    write(root / "grey8", make_stack(5, 260, 333, seed=4)[0], np.uint8, ".png")
    mixed = write(root / "mixed", make_stack(4, 200, 300, colour=True, seed=5)[0], np.uint16,
                  ".png")
    cv2.imwrite(str(mixed[1]), cv2.imread(str(mixed[1]), cv2.IMREAD_GRAYSCALE))
    write(root / "jpeg8", make_stack(8, 480, 640, colour=True, seed=6)[0], np.uint8, ".jpg")
    return [root / name for name in ("png16", "grey8", "mixed", "jpeg8")]


def render_microscopy(path: Path) -> Path:
    """A 16-bit TCZYX OME-TIFF: two time points of two channels, each focused in its own
    pattern, with pixel sizes, a Z step and channel names."""
    import tifffile

    data = np.stack([np.stack([
        np.rint(make_stack(6, 96, 128, seed=20 + 2 * t + c)[0] * 60000).astype(np.uint16)
        for c in range(2)]) for t in range(2)])
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "TCZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25, "PhysicalSizeZ": 0.5,
        "Channel": {"Name": ["DAPI", "GFP"]}})
    return path


def render_edited_map(stack: Path, path: Path) -> Path:
    """An index map as a user paints it: bands of layers with a rectangle set to layer 0."""
    height, width = cv2.imread(str(next(stack.iterdir())), cv2.IMREAD_UNCHANGED).shape[:2]
    layers = len(list(stack.iterdir()))
    edited = ((np.arange(width) * layers) // width)[None].repeat(height, 0).astype(np.uint16)
    edited[height // 4:height // 2, width // 4:width // 2] = 0
    cv2.imwrite(str(path), edited)
    return path


def fuse_all(src: Path, stacks: list[Path], extra: dict[str, Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(src)}

    def stackmff(*arguments) -> None:
        subprocess.run([sys.executable, "-m", "stackmff", *map(str, arguments)], check=True,
                       env=env)

    for stack in stacks:
        for name, arguments in COMMANDS.items():
            stem = out / f"{stack.name}_{name}"
            confidence = ["--confidence", f"{stem}_conf.png"] if name in WITH_CONFIDENCE else []
            stackmff("fuse", stack, *arguments, "-q", "-o", f"{stem}.png", "--focus-map",
                     f"{stem}_map.png", *confidence)
    stackmff("fuse", extra["ome"], "-q", "-o", out / "cells.ome.tif", "--height-map",
             out / "cells_heights.tif", "--focus-map", out / "cells_map.tif", "--confidence",
             out / "cells_conf.tif")
    stackmff("batch", extra["batch"], "-o", out / "batch", "--focus-map", "--confidence",
             "--workers", "1")
    (out / "batch" / "batch.jsonl").unlink()  # timings: never the same twice
    stackmff("regather", stacks[0], "--focus-map", extra["map"], "-q", "-o",
             out / "regathered.png")


def same_bytes(before: Path, after: Path) -> bool:
    """Byte for byte, except the random UUID that every OME-TIFF write records."""
    if not after.is_file():
        return False
    if filecmp.cmp(before, after, shallow=False):
        return True
    uuid = re.compile(rb"urn:uuid:[0-9a-f-]{36}")
    return uuid.sub(b"urn:uuid:", before.read_bytes()) == uuid.sub(b"urn:uuid:",
                                                                   after.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="stackmff-same-"))
    stacks = render(work / "stacks")
    batch = work / "batch"
    for stack in stacks[:2]:
        shutil.copytree(stack, batch / stack.name, dirs_exist_ok=True)
    extra = {"ome": render_microscopy(work / "cells.ome.tif"), "batch": batch,
             "map": render_edited_map(stacks[0], work / "edited_indices.png")}
    for side in ("before", "after"):
        fuse_all(getattr(args, side).resolve(), stacks, extra, work / side)
    before = work / "before"
    files = sorted(str(p.relative_to(before)) for p in before.rglob("*") if p.is_file())
    differ = [n for n in files if not same_bytes(before / n, work / "after" / n)]
    for name in differ:
        print(f"differs: {name}")
    print(f"{len(files) - len(differ)} of {len(files)} files identical")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
