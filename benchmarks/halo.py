"""Halos around bright near objects in front of a dark, detailed far background.

Usage: .venv/bin/python benchmarks/halo.py [--scenes 6] [--layers 8] [--size 256]
       [--out docs/halo.md]

Renders halo scenes (fixed seeds) with the physical renderer: a dark textured far background
and a few bright textured near discs. In the far-focused layers the near objects' blur spreads
over the background, and methods pick a wrong layer in a band around the near edges. Reports,
per method, PSNR over the whole image and in the halo band (background pixels 2..15 px
outside a near object, from the true depth) against the all-in-focus image, 8-bit BT.601 luma
(the project's reference protocol), for depthmap, v3 and enfuse (when installed), and for
depthmap and v3 with ``--halo`` (:mod:`stackmff.retouch.halo`). It also reports what ``--halo`` costs
where there is no halo: whole-image PSNR on the held-out validation scenes.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio

import stackmff
from stackmff.data.physical import PhysicalOptions, closest_layer, render_physical
from stackmff.data.scenes import Scene
from stackmff.evaluation.suites import held_out_scenes, validation_size_stacks
from stackmff.metrics import psnr
from stackmff.metrics.reference import grey8
from stackmff.retouch import limit_result_halos
from stackmff.stack_ops import gather

ROOT = Path(__file__).resolve().parents[1]
ENFUSE = ["enfuse", "--exposure-weight=0", "--saturation-weight=0", "--contrast-weight=1",
          "--hard-mask", "--contrast-window-size=9"]
BAND = (2, 15)  # px outside a near object's edge
FAR, NEAR = 10.0, 1.0


def halo_scene(size: int, seed: int) -> Scene:
    """A dark dead-leaves background (far) with 1-3 bright textured discs (near)."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size), 0.1, np.float32)
    for _ in range(400):  # dark dead leaves, small discs, painted over each other
        radius = rng.uniform(size / 80, size / 12)
        cy, cx = rng.uniform(0, size, 2)
        cv2.circle(image, (int(cx), int(cy)), int(radius), float(rng.uniform(0.02, 0.25)), -1)
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), 0.6)
    depth = np.full((size, size), FAR, np.float32)
    near = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        radius = rng.uniform(size / 10, size / 5)
        cy, cx = rng.uniform(size * 0.25, size * 0.75, 2)
        cv2.circle(near, (int(cx), int(cy)), int(radius), 1, -1)
    near = near.astype(bool)
    bright = 0.85 + 0.1 * np.sin(np.arange(size)[None, :] / 3.0) * np.cos(
        np.arange(size)[:, None] / 4.0) + rng.normal(0, 0.04, (size, size))
    image[near] = bright[near]
    depth[near] = NEAR + rng.uniform(0, 0.2)
    return Scene(image=np.clip(image, 0, 1).astype(np.float32), depth=depth)


def halo_band(depth: np.ndarray) -> np.ndarray:
    """Background pixels 2..15 px outside a near object, from the true depth."""
    background = (depth >= FAR).astype(np.uint8)
    distance = cv2.distanceTransform(background, cv2.DIST_L2, 5)
    return (background > 0) & (distance >= BAND[0]) & (distance <= BAND[1])


def band_psnr(fused: np.ndarray, truth: np.ndarray, band: np.ndarray) -> float:
    """PSNR on the band's pixels only, same protocol as the whole-image PSNR."""
    return float(peak_signal_noise_ratio(grey8(truth)[band], grey8(fused)[band], data_range=255))


def run_enfuse(layers: np.ndarray) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        names = []
        for k, layer in enumerate(layers):
            names.append(str(Path(folder) / f"layer{k:02d}.tif"))
            cv2.imwrite(names[-1], np.rint(layer * 255).astype(np.uint8))
        out = str(Path(folder) / "out.tif")
        subprocess.run([*ENFUSE, "-o", out, *names], check=True, capture_output=True)
        return cv2.imread(out, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0


def fused_by_method(layers: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    results = {"best layer per pixel (reference)": gather(layers, closest_layer(layers, truth))}
    for method in ("depthmap", "v3"):
        result = stackmff.fuse_stack(layers, method)
        results[method] = result.fused
        results[f"{method} --halo"] = limit_result_halos(layers, result).fused
    if shutil.which("enfuse"):
        results["enfuse"] = run_enfuse(layers)
    return results


def generic_cost(sizes: list[int]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Whole-image PSNR without and with ``--halo`` on the held-out validation stacks."""
    values: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for stack in validation_size_stacks(held_out_scenes(), sizes=sizes):
        layers = stack.layers.astype(np.float32)
        for method in ("depthmap", "v3"):
            result = stackmff.fuse_stack(layers, method)
            limited = limit_result_halos(layers, result)
            values.setdefault((stack.variant, method), []).append(
                (psnr(result.fused, stack.truth), psnr(limited.fused, stack.truth)))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--layers", type=int, nargs="+", default=[8])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "halo.md")
    args = parser.parse_args()
    started = time.perf_counter()
    rows: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for n_layers in args.layers:
        for seed in range(args.scenes):
            scene = halo_scene(args.size, seed)
            stack, _ = render_physical(scene, n_layers, np.random.default_rng(1000 + seed),
                                       PhysicalOptions(), shuffle=False)
            layers = np.ascontiguousarray(stack[::-1])  # layer 0 focused nearest
            band = halo_band(scene.depth)
            for name, fused in fused_by_method(layers, scene.image).items():
                rows.setdefault((n_layers, name), []).append(
                    (psnr(fused, scene.image), band_psnr(fused, scene.image, band)))
    generic = generic_cost(args.layers)
    elapsed = time.perf_counter() - started
    command = "python benchmarks/halo.py " + " ".join(sys.argv[1:])
    lines = [
        "# Halos around near edges",
        "",
        f"Produced by `{command.strip()}` on {date.today().isoformat()}, "
        f"{platform.machine()} {platform.system()} ({os.cpu_count()} cores), {elapsed:.0f} s. Mean over "
        f"{args.scenes} scenes ({args.size}x{args.size}, grey) per stack size; PSNR in dB "
        "against the all-in-focus image, 8-bit BT.601 luma.",
        "",
        "| N | method | PSNR whole image | PSNR halo band |",
        "|---|---|---|---|",
    ]
    for (n_layers, name), values in rows.items():
        whole, ring = np.mean(values, axis=0)
        lines.append(f"| {n_layers} | {name} | {whole:.2f} | {ring:.2f} |")
    lines += ["", "Effect of `--halo`, in dB, with minus without:", ""]
    for n_layers in args.layers:
        for method in ("depthmap", "v3"):
            base = np.mean(rows[(n_layers, method)], axis=0)
            after = np.mean(rows[(n_layers, f"{method} --halo")], axis=0)
            lines.append(f"- N = {n_layers}, {method}: halo band {after[1] - base[1]:+.2f}, "
                         f"whole image {after[0] - base[0]:+.2f}.")
    lines += ["", "Where there is no halo: whole-image PSNR (dB) on the held-out validation "
              f"scenes (the `validation` suite's renderer and seeds), mean over "
              f"{len(next(iter(generic.values())))} stacks per N:", "", "| N | method | without | with `--halo` | change |",
              "|---|---|---|---|---|"]
    for (variant, method), values in generic.items():
        without, with_halo = np.mean(values, axis=0)
        lines.append(f"| {variant[2:]} | {method} | {without:.2f} | {with_halo:.2f} | "
                     f"{with_halo - without:+.2f} |")
    lines += [
        "",
        "Notes:",
        "",
        "- Scenes: a dark dead-leaves background (grey 0.02..0.25, depth 10) behind one to "
        "three bright textured discs (depth about 1), rendered by `render_physical` (default "
        "options, fixed seeds, not shuffled) and reordered near-to-far. Halo band: background "
        f"pixels {BAND[0]}..{BAND[1]} px from a near disc (true depth). The reference row "
        "gathers the layer closest to the truth per pixel (3x3 error), the best any selection "
        "can do.",
        "- The rule (`stackmff.retouch.halo`) measures, in the stack itself, how far each near "
        "object's blur spreads in each farther layer, and lets a pixel beside the object take "
        "a farther layer only where that blur has faded (2 sigma). Its one constant was chosen "
        "from 1.5, 2 and 3 on these halo scenes; it was not tuned on the validation scenes.",
        "- Rules measured on the way and dropped: handing unsure pixels near a confident "
        "nearer choice to the nearest confident layer (-1.1 to +0.1 dB in the band); "
        "interpolating the layer index over low-confidence pixels (+0.2 to +0.9 dB in the "
        "band at N = 8, none at N = 16, and a confidence threshold per method); limiting by "
        "the modelled spill intensity instead of its reach (about half the gain).",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.write_text(table)


if __name__ == "__main__":
    main()
