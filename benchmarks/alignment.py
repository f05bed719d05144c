"""Registration quality: synthetic stacks with known transforms, and real hand-held stacks.

Usage: .venv/bin/python benchmarks/alignment.py [--data ../shared/data] [--out docs/alignment.md]
       [--figure docs/alignment_before_after.jpg]

1. Synthetic (tests/test_registration.py's generator: shifts <= 20 px, rotation <= 1 deg,
   scale 0.97..1.03 over 10 layers, 2 layers blurred to little texture, exposure and white
   balance drift): corner error (RMS, px, of the reference corners mapped by the estimated
   against the true transform) and time. If Hugin's `align_image_stack` is installed it runs
   on the same files (`-m -f 40`, in stack order: it aligns to the first file); its geometry
   is read back from its output images: each is registered (ECC, affine) to the truly
   aligned layer and the residual's corner error is reported the same way for both tools.
2. Real stacks (mobile-depth-keyboard, phone-stacks-cw): mean normalised cross-correlation
   of each layer's gradient magnitude with its neighbour's, over pixels that are sharp in
   both, before and after alignment; and the time.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from stackmff.io import load_stack, read_pages, write_image
from stackmff.io.pixels import from_float, to_float
from stackmff.registration import align_stack
from stackmff.registration.align import warp_layer
from stackmff.registration.estimate import estimate_pair, prepare
from stackmff.stack_ops import luma

ROOT = Path(__file__).resolve().parents[1]


def gradient_ncc(a: np.ndarray, b: np.ndarray) -> float:
    """NCC of gradient magnitudes over pixels sharp in both (top 30% gradient in each)."""
    def magnitude(image):
        grey = luma(image)
        gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
        return np.sqrt(gx * gx + gy * gy)

    ga, gb = magnitude(a), magnitude(b)
    mask = (ga > np.quantile(ga, 0.7)) & (gb > np.quantile(gb, 0.7))
    x, y = ga[mask] - ga[mask].mean(), gb[mask] - gb[mask].mean()
    return float((x * y).sum() / (np.sqrt((x * x).sum() * (y * y).sum()) + 1e-12))


def neighbour_ncc(layers: np.ndarray) -> float:
    return float(np.mean([gradient_ncc(layers[k], layers[k + 1]) for k in range(len(layers) - 1)]))


def residual_error(output: np.ndarray, truly_aligned: np.ndarray, border: int = 32) -> float:
    """Corner error of the affine residual between an aligned output and the truly aligned
    layer, measured inside a border (where every tool had real pixels)."""
    from test_registration import corner_error

    inner = (slice(border, -border), slice(border, -border))
    estimate = estimate_pair(prepare(output[inner], 1.0), prepare(truly_aligned[inner], 1.0),
                             "affine", initial=np.eye(3))
    return corner_error(estimate.matrix, np.eye(3))


def run_align_image_stack(tool: str, layers: np.ndarray, order: list[int]):
    """Run Hugin's tool on the layers in ``order``; returns (seconds, {layer: output}) or the error."""
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        files = []
        for position, k in enumerate(order):
            path = work / f"in_{position:02d}.tif"
            write_image(from_float(layers[k], np.uint16), path)
            files.append(str(path))
        started = time.perf_counter()
        process = subprocess.run([tool, "-m", "-f", "40", "-a", str(work / "out_"), *files],
                                 capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if process.returncode != 0:
            reason = [line for line in process.stdout.splitlines() + process.stderr.splitlines()
                      if "error" in line.lower() or "bad" in line.lower()]
            return elapsed, (reason[0] if reason else f"exit {process.returncode}")
        outputs = {}
        for position, k in enumerate(order):
            page = to_float(read_pages(work / f"out_{position:04d}.tif")[0])
            outputs[k] = page[..., :3] if page.ndim == 3 else page
        return elapsed, outputs


def synthetic_rows(tool: str | None) -> list[str]:
    from test_registration import corner_error, make_moving_stack

    all_layers, all_truths, _ = make_moving_stack()
    lines = ["| stack | tool | time (s) | corner error, textured layers (px, max) | "
             "corner error, blurred layers (px, max) | residual vs truth, textured (px, max) |",
             "|---|---|---:|---:|---:|---:|"]
    for label, keep in (("10 layers, 2 heavily blurred", list(range(10))),
                        ("8 textured layers only", [k for k in range(10) if k not in (2, 7)])):
        layers, truths = all_layers[keep], all_truths[keep]
        reference = len(keep) // 2
        # transforms relative to the new reference layer
        truths = np.array([t @ np.linalg.inv(truths[reference]) for t in truths])
        blurred = [i for i, k in enumerate(keep) if k in (2, 7)]
        textured = [i for i in range(len(keep)) if i not in blurred]
        truly_aligned = [warp_layer(layer, truth)[0] for layer, truth in zip(layers, truths)]
        started = time.perf_counter()
        ours = align_stack(layers, on_failure="keep", tolerance=0.0, keep_size=True)
        elapsed = time.perf_counter() - started
        direct = [corner_error(ours.transforms[i], truths[i]) for i in range(len(keep))]
        residual = [residual_error(ours.layers[i], truly_aligned[i]) for i in textured]
        b = f"{max(direct[i] for i in blurred):.3f}" if blurred else "-"
        lines.append(f"| {label} | stackmff align (similarity) | {elapsed:.2f} | "
                     f"{max(direct[i] for i in textured):.3f} | {b} | {max(residual):.3f} |")
        if tool:
            # Hugin's tool aligns to the first file: pass the stack in order and compare in
            # the first layer's frame
            order = list(range(len(keep)))
            first = [t @ np.linalg.inv(truths[0]) for t in truths]
            truly_aligned = [warp_layer(layer, truth)[0] for layer, truth in zip(layers, first)]
            elapsed, outputs = run_align_image_stack(tool, layers, order)
            if isinstance(outputs, str):
                lines.append(f"| {label} | align_image_stack -m (Hugin) | {elapsed:.2f} | "
                             f"failed: {outputs} | | |")
            else:
                residual = [residual_error(outputs[i], truly_aligned[i]) for i in textured]
                lines.append(f"| {label} | align_image_stack -m (Hugin) | {elapsed:.2f} | n/a "
                             f"| n/a | {max(residual):.3f} |")
    return lines


def real_rows(data: Path) -> list[str]:
    lines = ["| stack | layers | size | time (s) | gradient NCC before | after |",
             "|---|---:|---|---:|---:|---:|"]
    for name in ("mobile-depth-keyboard/stack", "phone-stacks-cw/cocoa1_largemotion",
                 "phone-stacks-cw/dog1_largemotion"):
        folder = data / name
        if not folder.is_dir():
            continue
        stack = load_stack(folder)
        started = time.perf_counter()
        result = align_stack(stack.layers, on_failure="keep")
        elapsed = time.perf_counter() - started
        y0, y1, x0, x1 = result.crop
        before = neighbour_ncc(stack.layers[:, y0:y1, x0:x1])
        after = neighbour_ncc(result.layers)
        height, width = stack.layers.shape[1:3]
        lines.append(f"| {name} | {len(stack)} | {width}x{height} | {elapsed:.2f} | "
                     f"{before:.3f} | {after:.3f} |")
    return lines


def before_after_figure(data: Path, out: Path) -> None:
    """Side-by-side crops: fused without and with alignment (depthmap method)."""
    import stackmff

    rows = []
    for name, (y, x) in (("phone-stacks-cw/dog1_largemotion", (100, 150)),
                         ("mobile-depth-keyboard/stack", (60, 200))):
        folder = data / name
        if not folder.is_dir():
            return
        stack = load_stack(folder)
        raw = stackmff.fuse_stack(stack).fused
        result = align_stack(stack.layers, on_failure="keep", keep_size=True)
        aligned = stackmff.fuse_stack(result.layers).fused
        crop = (slice(y, y + 200), slice(x, x + 300))
        rows.append(np.concatenate([raw[crop], np.ones((200, 6, 3), np.float32),
                                    aligned[crop]], axis=1))
    figure = (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)
    cv2.imwrite(str(out), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--figure", type=Path,
                        help="write before/after crops of fused real stacks (JPEG)")
    args = parser.parse_args()
    if args.figure:
        before_after_figure(args.data, args.figure)
    tool = shutil.which("align_image_stack")
    text = "\n".join(["# Registration quality", "",
                      f"Command: `{' '.join(sys.argv)}`. Date {time.strftime('%Y-%m-%d')}.", "",
                      "## Synthetic stacks with known transforms", ""]
                     + synthetic_rows(tool)
                     + ["", "## Real hand-held stacks", ""] + real_rows(args.data)) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
