"""The mesh step alone on a large image: its time and the memory it adds, per format.

A 4000 x 3000 focus map of a 20-layer stack (a tilted plane with steps, noise and unsure
patches), its sub-layer positions, confidence and a colour fused image are made in memory;
then the output plan's mesh encoding (surface, texture, file bytes) runs as ``stackmff fuse
--mesh`` runs it after the fusion. Time is wall clock; memory is the peak resident size the
step adds over what the inputs already held (Linux's VmHWM, reset before the step).

Usage: python benchmarks/mesh_size.py [--width 4000 --height 3000 --layers 20] [--format glb]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def resident_mb(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def synthetic(height: int, width: int, layers: int, seed: int = 0):
    """Focus map, sub-layer depth, confidence, fused RGB image."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = (layers - 1) * (0.6 * cols / width + 0.3 * rows / height)
    depth[(cols > width / 3) & (cols < width / 2)] += 3       # a raised block: steps
    depth = np.clip(depth + rng.normal(0, 0.3, depth.shape).astype(np.float32), 0, layers - 1)
    focus_map = np.rint(depth).astype(np.uint16)
    confidence = rng.uniform(0.2, 0.9, depth.shape).astype(np.float32)
    fused = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return focus_map, depth.astype(np.float32), confidence, fused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--format", nargs="+", default=["glb", "obj", "ply", "stl"])
    parser.add_argument("--faces", type=int, default=500_000)
    parser.add_argument("--out", default="out/mesh_size")
    args = parser.parse_args()

    import trimesh  # noqa: F401  (imported before the measurement, as the plan's check does)

    from stackmff.outputs import MeshOptions, OutputPlan, Products

    focus_map, depth, confidence, fused = synthetic(args.height, args.width, args.layers)
    products = Products(fused, [focus_map], [confidence], args.layers, "synthetic",
                        depths=[depth])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{args.layers} layers of {args.width}x{args.height}, budget {args.faces} faces")
    for kind in args.format:
        plan = OutputPlan.of(out / "fused.png", mesh=out / f"surface.{kind}",
                             mesh_options=MeshOptions.of(args.faces, "50um", "5um"))
        before = resident_mb("VmRSS")
        reset_peak()
        started = time.perf_counter()
        files = plan._encode_mesh(products)
        seconds = time.perf_counter() - started
        added = resident_mb("VmHWM") - before
        for path, data in files.items():
            path.write_bytes(data)
        mesh = trimesh.load(out / f"surface.{kind}", force="mesh", process=False)
        faces, size = len(mesh.faces), sum(len(d) for d in files.values()) / 1e6
        print(f"{kind}: {seconds:.1f} s, +{added:.0f} MB peak, {faces} faces "
              f"(budget {args.faces}), {size:.0f} MB on disk")
        del files, mesh


if __name__ == "__main__":
    main()
