"""Does a change keep the fused files byte for byte? Fuse the same stacks with two versions of
the code and compare the files.

Usage: .venv/bin/python benchmarks/same_outputs.py BEFORE_SRC AFTER_SRC [--workdir DIR]

BEFORE_SRC and AFTER_SRC are ``src`` folders of two checkouts (e.g. ``git archive <commit> src
| tar -x -C /tmp/before``). Renders, with fixed seeds, 16-bit colour PNG, 8-bit grey PNG,
mixed (16-bit colour with one 8-bit grey file) and 8-bit colour JPEG stacks, fuses each with
depthmap, pyramid, v3 fp32, v3 bf16 and tiled v3 (fused image and focus map) as whole
`stackmff fuse` processes of each version, and prints every file that differs.
"""

from __future__ import annotations

import argparse
import filecmp
import os
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
}


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


def fuse_all(src: Path, stacks: list[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    for stack in stacks:
        for name, arguments in COMMANDS.items():
            stem = out / f"{stack.name}_{name}"
            subprocess.run([sys.executable, "-m", "stackmff", "fuse", str(stack), *arguments,
                            "-q", "-o", f"{stem}.png", "--focus-map", f"{stem}_map.png"],
                           check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="stackmff-same-"))
    stacks = render(work / "stacks")
    for side in ("before", "after"):
        fuse_all(getattr(args, side).resolve(), stacks, work / side)
    files = sorted(p.name for p in (work / "before").iterdir())
    differ = [n for n in files if not filecmp.cmp(work / "before" / n, work / "after" / n,
                                                  shallow=False)]
    for name in differ:
        print(f"differs: {name}")
    print(f"{len(files) - len(differ)} of {len(files)} files identical")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
