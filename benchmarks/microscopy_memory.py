"""Peak memory of fusing a large OME-Zarr: only one (scene, T) stack is ever in memory.

Writes a rendered OME-Zarr of 4 time points x 40 planes x 2048 x 2048 uint16 (1.34 GB of
pixels; axes t, z, y, x; chunks of one 1024 x 1024 tile of one plane), fuses it with
``stackmff fuse ... --height-map`` under GNU time, prints the peak resident memory, and
deletes everything it wrote.

    flock /tmp/heavy.lock python benchmarks/microscopy_memory.py [--folder /tmp]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

SHAPE = (4, 40, 2048, 2048)  # T, Z, Y, X


def render_stack(planes: int, size: int, seed: int) -> np.ndarray:
    """One z-stack: a textured specimen on a tilted slide, sharp in the plane of its depth."""
    rng = np.random.default_rng(seed)
    small = cv2.resize(rng.random((size // 16, size // 16), dtype=np.float32), (size, size))
    fine = cv2.GaussianBlur(rng.random((size, size), dtype=np.float32), (0, 0), 1.0)
    truth = 0.2 + 0.5 * small + 0.3 * (fine - fine.min()) / np.ptp(fine)
    y, x = np.mgrid[0:size, 0:size]
    depth = ((x + y) * planes // (2 * size)).astype(np.int16)
    blurred = np.stack([truth if d == 0 else cv2.GaussianBlur(truth, (0, 0), 1.3 * d)
                        for d in range(planes)])
    blurred = np.rint(blurred * 60000).astype(np.uint16)
    stack = np.empty((planes, size, size), np.uint16)
    for k in range(planes):
        distance = np.abs(depth - k).astype(np.intp)
        stack[k] = np.take_along_axis(blurred, distance[None], axis=0)[0]
    return stack


def write_zarr(path: Path) -> None:
    import zarr

    times, planes, height, width = SHAPE
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    array = group.create_array("0", shape=SHAPE, dtype=np.uint16, chunks=(1, 1, 1024, 1024))
    for t in range(times):
        array[t] = render_stack(planes, height, seed=t)
    axes = [{"name": "t", "type": "time"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    group.attrs.update({"multiscales": [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 0.5, 0.1625, 0.1625]}]}]}]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=tempfile.gettempdir())
    parser.add_argument("--method", default="depthmap")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stackmff-large-", dir=args.folder))
    try:
        source = work / "large.ome.zarr"
        started = time.perf_counter()
        write_zarr(source)
        stored = sum(f.stat().st_size for f in source.rglob("*") if f.is_file())
        print(f"wrote {source}: {np.prod(SHAPE) * 2 / 1e9:.2f} GB of pixels, "
              f"{stored / 1e9:.2f} GB on disk, in {time.perf_counter() - started:.0f} s")
        command = ["/usr/bin/time", "-v", sys.executable, "-m", "stackmff", "fuse",
                   str(source), "-o", str(work / "fused.ome.zarr"), "-m", args.method,
                   "--height-map", str(work / "heights.tif")]
        process = subprocess.run(command, capture_output=True, text=True)
        print(process.stdout.strip())
        if process.returncode != 0:
            sys.exit(f"fuse failed: {process.stderr.strip()}")
        peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                             process.stderr).group(1))
        wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", process.stderr).group(1)
        stack = SHAPE[1] * SHAPE[2] * SHAPE[3] * 2
        print(f"peak resident memory of stackmff fuse: {peak / 1e6:.2f} GB ({peak} kB; one "
              f"uint16 stack is {stack / 1e6:.0f} MB); wall time {wall}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
