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


def read_training_stack(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """One written stack as the network sees a camera's: 8-bit layers as luma ``(N, H, W)``
    float32, and its label, the layer closest to the truth (as the physical renderer's)."""
    from stackmff.data.export import read_synthetic_stack
    from stackmff.data.physical import closest_layer
    from stackmff.io.pixels import from_float, to_float
    from stackmff.stack_ops import luma

    stack = read_synthetic_stack(folder)
    eight_bit = np.dtype(np.uint8)
    layers = to_float(from_float(stack["layers"].astype(np.float32) / 65535, eight_bit))
    truth = to_float(from_float(stack["truth"].astype(np.float32) / 65535, eight_bit))
    return luma(layers).astype(np.float32), closest_layer(layers, truth).astype(np.int64)


class RenderedPool:
    """Every complete stack of a folder, read once, grouped by layer count."""

    def __init__(self, folder: str | Path, crop: int) -> None:
        from stackmff.data.export import stack_folder

        self.crop = crop
        self.groups: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        index = 0
        while (stack_folder(folder, index) / "stack.json").is_file():
            layers, label = read_training_stack(stack_folder(folder, index))
            self.groups.setdefault(len(layers), []).append((layers, label))
            index += 1
        if not self.groups:
            raise StackError(f"[data] rendered = {str(folder)!r} holds no stacks (write them "
                             f"with `stackmff synth --renderer raytraced --split train -o "
                             f"{folder}`)")
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
