"""Stacks that `stackmff synth` wrote (the ray-traced training split) as training batches.

Why: the network's own renderer composites layers with a disc blur; stacks whose blur came
from a lens model (POV-Ray's distributed ray tracing) teach it occlusion at depth edges, thin
structures and highlights as optics make them. Rendering one costs seconds, so a folder is
rendered once (`stackmff synth --renderer raytraced --split train`) and drawn from again and
again: random crops, flips and layer orders, as the synthetic stream draws its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stackmff.errors import StackError


def camera_view(stack: dict, window: tuple[slice, slice] = (slice(None), slice(None))
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A written stack (:func:`stackmff.data.export.read_synthetic_stack`) in ``window`` as
    a camera gives it: 8-bit layers, the truth at that bit depth in [0, 1], and the label,
    the layer closest to the truth, its depth label where layers tie (as the physical
    renderer's)."""
    from stackmff.data.physical import closest_layer
    from stackmff.io.pixels import from_float, to_float

    eight_bit = np.dtype(np.uint8)
    layers = from_float(stack["layers"][(slice(None), *window)].astype(np.float32) / 65535,
                        eight_bit)
    truth = to_float(from_float(stack["truth"][window].astype(np.float32) / 65535, eight_bit))
    return layers, truth, closest_layer(to_float(layers), truth,
                                         prefer=stack["focus_map"][window])


def read_training_stack(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """One written stack as the network sees a camera's: luma ``(N, H, W)`` float32 of its
    8-bit layers, and its label."""
    from stackmff.data.export import read_synthetic_stack
    from stackmff.io.pixels import to_float
    from stackmff.stack_ops import luma

    layers, _, label = camera_view(read_synthetic_stack(folder))
    return luma(to_float(layers)).astype(np.float32), label.astype(np.int64)


def rendered_folders(folder: str | Path) -> list[Path]:
    """The complete stacks of a folder `stackmff synth` wrote, in order.

    Raises:
        StackError: there are none.
    """
    from stackmff.data.export import stack_folder

    found = []
    while (stack_folder(folder, len(found)) / "stack.json").is_file():
        found.append(stack_folder(folder, len(found)))
    if not found:
        raise StackError(f"[data] rendered = {str(folder)!r} holds no stacks (write them "
                         f"with `stackmff synth --renderer raytraced --split train -o "
                         f"{folder}`)")
    return found


class RenderedPool:
    """Every complete stack of a folder, read once, grouped by layer count."""

    def __init__(self, folder: str | Path, crop: int) -> None:
        self.crop = crop
        self.groups: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for path in rendered_folders(folder):
            layers, label = read_training_stack(path)
            self.groups.setdefault(len(layers), []).append((layers, label))
        self.sizes = sorted(self.groups)

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def batch(self, rng: np.random.Generator, batch_size: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(stack [B, N, 1, h, w], focus_map [B, h, w])``: B stacks of one N (drawn with
        the stacks' own odds), each a random crop, flipped and reordered at random."""
        counts = np.array([len(self.groups[n]) for n in self.sizes], float)
        n = self.sizes[rng.choice(len(self.sizes), p=counts / counts.sum())]
        group = self.groups[n]
        height, width = group[0][0].shape[1:]
        size = min(self.crop, height, width)
        stacks, maps = [], []
        for pick in rng.integers(len(group), size=batch_size):
            layers, label = group[pick]
            y, x = rng.integers(height - size + 1), rng.integers(width - size + 1)
            layers, label = layers[:, y:y + size, x:x + size], label[y:y + size, x:x + size]
            if rng.random() < 0.5:
                layers, label = layers[:, :, ::-1], label[:, ::-1]
            if rng.random() < 0.5:
                layers, label = layers[:, ::-1], label[::-1]
            order = rng.permutation(n)  # new position k holds old layer order[k]
            stacks.append(layers[order])
            maps.append(np.argsort(order)[label])
        return (torch.from_numpy(np.ascontiguousarray(np.stack(stacks)))[:, :, None],
                torch.from_numpy(np.stack(maps)))
