"""An endless stream of synthetic training batches, one stack size N per batch.

Every sample is a fresh scene, a fresh random crop, flips, and a fresh layer order, so the
network never sees the same stack twice; with ``[data] rendered``, a share of the batches
comes from a folder of rendered stacks instead (:mod:`stackmff.training.rendered`).
Synthesis runs in worker processes with their numeric libraries on one thread each, beside
the training process.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from stackmff.data.faithful import render_faithful
from stackmff.data.physical import PhysicalOptions, render_physical
from stackmff.data.sources import SceneSampler, SourceWeights
from stackmff.stack_ops import luma
from stackmff.training.config import DataConfig
from stackmff.training.rendered import RenderedPool


def render(config: DataConfig, sampler: SceneSampler, n_layers: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One training stack ``(N, H, W)`` luma and its label map ``(H, W)``."""
    scene = sampler.draw(rng)
    shuffle = not config.ordered
    if config.renderer == "faithful":
        stack, focus_map = render_faithful(scene, n_layers, rng, shuffle=shuffle)
    elif config.renderer == "physical":
        options = PhysicalOptions(noise=config.noise, jpeg=config.jpeg, label=config.label,
                                  highlights=config.highlights,
                                  plateaus=config.plateaus, emission=config.emission)
        stack, focus_map = render_physical(scene, n_layers, rng, options, shuffle=shuffle)
    else:
        raise ValueError(f"renderer must be 'physical' or 'faithful', got {config.renderer!r}")
    return luma(stack).astype(np.float32), focus_map


def layer_count_odds(config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """The stack sizes N a batch may have and the probability of each.

    "uniform" is the paper's draw. "inverse" draws N with probability proportional to 1/N, so
    every stack size gets the same share of the compute (a step costs about N times a layer),
    where the uniform draw spends most of it on large stacks.
    """
    sizes = np.arange(config.min_layers, config.max_layers + 1)
    if config.layer_sampling == "uniform":
        odds = np.ones(len(sizes))
    elif config.layer_sampling == "inverse":
        odds = 1.0 / sizes
    else:
        raise ValueError(f"layer_sampling must be 'uniform' or 'inverse', "
                         f"got {config.layer_sampling!r}")
    return sizes, odds / odds.sum()


class SyntheticStacks(IterableDataset):
    """Yields ``(stack [B, N, 1, H, W], focus_map [B, H, W])`` forever."""

    def __init__(self, config: DataConfig, seed: int) -> None:
        super().__init__()
        if not 2 <= config.min_layers <= config.max_layers:
            raise ValueError(f"need 2 <= min_layers <= max_layers, got "
                             f"{config.min_layers}..{config.max_layers}")
        self.config, self.seed = config, seed
        self.sizes, self.size_odds = layer_count_odds(config)

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info else 0
        cv2.setNumThreads(1)
        rng = np.random.default_rng([self.seed, worker])
        weights = SourceWeights(self.config.dead_leaves, self.config.photos,
                                self.config.motorcycle, self.config.photo_folder,
                                self.config.debian_photos)
        sampler = SceneSampler(self.config.crop, weights)
        pool = (RenderedPool(self.config.rendered, self.config.crop)
                if self.config.rendered and self.config.rendered_share > 0 else None)
        while True:
            if pool is not None and rng.random() < self.config.rendered_share:
                yield pool.batch(rng, self.config.batch_size)
                continue
            n = int(rng.choice(self.sizes, p=self.size_odds))
            pairs = [render(self.config, sampler, n, rng) for _ in range(self.config.batch_size)]
            stacks = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, :, None]
            maps = torch.from_numpy(np.stack([p[1] for p in pairs]))
            yield stacks, maps


def batches(config: DataConfig, seed: int) -> DataLoader:
    """The batch stream, synthesised in ``config.workers`` background processes.

    The workers are spawned, not forked: a fork inherits OpenCV's thread pool in whatever
    state the parent left it (it has rendered the validation stacks by then), and the child's
    ``cv2.setNumThreads`` can then wait forever on a lock no thread will release."""
    workers = config.workers
    return DataLoader(SyntheticStacks(config, seed), batch_size=None, num_workers=workers,
                      persistent_workers=workers > 0, prefetch_factor=2 if workers > 0 else None,
                      multiprocessing_context="spawn" if workers > 0 else None)


def validation_set(config: DataConfig, count: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fixed set of stacks (seeded), N spread over the training range, from held-out
    scene draws: a different seed from training, so no training stack repeats."""
    from stackmff.data.sources import VALIDATION_PHOTOS

    rng = np.random.default_rng(2**31 - 1)
    weights = SourceWeights(dead_leaves=0.5, photos=0.5, motorcycle=0.0)
    sampler = SceneSampler(size, weights, photos=VALIDATION_PHOTOS)
    sizes = np.linspace(config.min_layers, config.max_layers, count).round().astype(int)
    return [render(config, sampler, int(n), rng) for n in sizes]
