"""Where a method loses to another, pixel by pixel, on the out-of-domain stacks where the
network is behind: the microscopy suite's brightfield slides (against their true map) and
Devernay's office (against ``depthmap``). Tells a trainer which structures to render more of.

For stacks with a true map: the share of the method's squared error (8-bit grey) that lies
on and beside the map's boundaries, and how often it picks another layer there; and on the
brightest 40% of the truth (a slide's flat background) how often it picks a layer two or
more planes off and its mean offset in planes (a bias to one side). For every
stack: how concentrated its excess squared error over the other method is (the share in the
worst 32 x 32 blocks, and within 4 px of a pixel that the sensor clipped in some layer), and
optionally a figure of where (red: the method worse).

Usage: .venv/bin/python benchmarks/where_it_loses.py [--data ../shared/data]
           [--method v3+] [--blend band] [--checkpoint PATH] [--against depthmap]
           [--figures DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from stackmff.api import fuse_stack
from stackmff.evaluation.suites import BenchStack, microscopy_stacks, real_stacks
from stackmff.io.pixels import from_float, to_float
from stackmff.metrics.reference import grey8, psnr

BLOCK = 32
RINGS = ((0, 1), (1, 3))  # distance to the true map's nearest boundary (px)
CLIPPED = 250  # 8-bit grey at or above this counts as clipped
NEAR_CLIPPED = 4  # px
BRIGHT = 0.6  # the brightest 40% of the truth's grey


def boundary_distance(focus_map: np.ndarray) -> np.ndarray:
    """Pixels to the nearest pixel whose right or lower neighbour is in another layer."""
    edge = np.zeros(focus_map.shape, bool)
    edge[:, :-1] |= focus_map[:, 1:] != focus_map[:, :-1]
    edge[:-1] |= focus_map[1:] != focus_map[:-1]
    return cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3)


def squared_error(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return (grey8(image).astype(np.float64) - grey8(truth).astype(np.float64)) ** 2


def near_clipped(layers: np.ndarray) -> np.ndarray:
    """Pixels within NEAR_CLIPPED px of one that is clipped in some layer."""
    clipped = np.any([grey8(layer) >= CLIPPED for layer in layers], axis=0)
    size = 2 * NEAR_CLIPPED + 1
    return cv2.dilate(clipped.astype(np.uint8), np.ones((size, size), np.uint8)) > 0


def worst_block_share(excess: np.ndarray, count: int) -> float:
    """Share of the summed excess error in the ``count`` worst blocks."""
    h, w = (s // BLOCK * BLOCK for s in excess.shape)
    blocks = excess[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).sum(axis=(1, 3))
    worst = np.sort(blocks.ravel())[::-1][:count]
    return float(worst.sum() / excess.sum())


def overlay(truth: np.ndarray, excess: np.ndarray, path: Path) -> None:
    """Grey truth at half brightness; red where the method is worse, green where better."""
    base = grey8(truth).astype(np.float32) * 0.5
    signed = np.clip(cv2.GaussianBlur(excess.astype(np.float32), (0, 0), 3) / 20, -1, 1)
    bgr = np.stack([base, base + 200 * np.clip(-signed, 0, 1), base + 200 * np.clip(signed, 0, 1)],
                   axis=-1)
    cv2.imwrite(str(path), np.clip(bgr, 0, 255).astype(np.uint8),
                [cv2.IMWRITE_JPEG_QUALITY, 85])


def stacks(data: Path) -> list[BenchStack]:
    found = [s for s in microscopy_stacks() if s.variant == "brightfield"]
    return found + [s for s in real_stacks(data) if s.suite == "devernay-office"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--method", default="v3+")
    parser.add_argument("--blend", default="band")
    parser.add_argument("--checkpoint", help="other network weights than the shipped ones")
    parser.add_argument("--against", default="depthmap")
    parser.add_argument("--figures", type=Path)
    args = parser.parse_args()
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
    print(f"{args.method} --blend {args.blend} against {args.against}\n")
    print("| stack | PSNR | PSNR against | on a boundary: pixels, share of error, other layer "
          "| 1-3 px from one | brightest 40%: 2+ planes off, mean offset "
          "| excess error in the worst 1% / 5% of 32 px blocks "
          f"| pixels within {NEAR_CLIPPED} px of a clipped one, their share of the excess |")
    print("|---|---:|---:|---|---|---|---:|---:|")
    options = {"checkpoint": args.checkpoint} if args.checkpoint else {}
    for stack in stacks(args.data):
        layers = to_float(from_float(stack.layers, stack.dtype)  # as the bench's files hold it
                          if stack.layers.dtype.kind == "f" else stack.layers)
        ours = fuse_stack(layers, args.method, blend=args.blend, **options)
        theirs = fuse_stack(layers, args.against)
        error, other = squared_error(ours.fused, stack.truth), squared_error(theirs.fused,
                                                                            stack.truth)
        scores = [psnr(result.fused, stack.truth) for result in (ours, theirs)]
        rings, bright = ["-", "-"], "-"
        if stack.focus_map is not None:
            grey = grey8(stack.truth)
            top = grey >= np.quantile(grey, BRIGHT)
            offset = ours.focus_map[top].astype(np.int64) - stack.focus_map[top]
            bright = f"{np.mean(np.abs(offset) >= 2):.1%}, {offset.mean():+.2f}"
            distance = boundary_distance(stack.focus_map)
            wrong = ours.focus_map != stack.focus_map
            rings = []
            for low, high in RINGS:
                ring = (distance >= low) & (distance < high)
                rings.append(f"{ring.mean():.0%}, {error[ring].sum() / error.sum():.0%}, "
                             f"{wrong[ring].mean():.0%}")
        excess = error - other
        blocks = excess.size // BLOCK**2
        near = near_clipped(layers)
        if excess.sum() > 0:
            shares = (f"{worst_block_share(excess, max(1, blocks // 100)):.0%} / "
                      f"{worst_block_share(excess, max(1, blocks // 20)):.0%}")
            clipped = f"{near.mean():.0%}, {excess[near].sum() / excess.sum():.0%}"
        else:
            shares, clipped = "not behind", f"{near.mean():.0%}, -"
        name = f"{stack.suite} {stack.variant} {stack.name}"
        print(f"| {name} | {scores[0]:.2f} | {scores[1]:.2f} | {rings[0]} | {rings[1]} | {bright} "
              f"| {shares} | {clipped} |")
        if args.figures:
            overlay(stack.truth, excess, args.figures / f"{name.replace(' ', '-')}.jpg")


if __name__ == "__main__":
    main()
