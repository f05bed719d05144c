"""Write synthetic stacks to disk with their ground truth, for inspection and other tools."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stackmff.data.faithful import render_faithful
from stackmff.data.physical import PhysicalOptions, render_physical
from stackmff.data.sources import VALIDATION_PHOTOS, SceneSampler, SourceWeights
from stackmff.io import write_files_atomically
from stackmff.io.image import encode_image
from stackmff.io.pixels import from_float


def write_synthetic_stacks(out: str | Path, count: int, n_layers: int, size: int,
                           renderer: str = "physical", seed: int = 0,
                           held_out: bool = True) -> list[Path]:
    """Render ``count`` stacks into ``out/stack_000/...``; returns the stack folders.

    Each folder holds ``layer_00.png ...`` (16-bit RGB), ``all_in_focus.png`` (the sharp
    scene), ``focus_map.png`` (16-bit ground-truth layer indices) and ``stack.json``.
    ``held_out`` draws photos only from the validation list, never from training photos.
    """
    if renderer not in ("physical", "faithful"):
        raise ValueError(f"renderer must be 'physical' or 'faithful', got {renderer!r}")
    if n_layers < 2 or count < 1 or size < 32:
        raise ValueError(f"need layers >= 2, count >= 1, size >= 32; got {n_layers}, {count}, {size}")
    rng = np.random.default_rng(seed)
    photos = VALIDATION_PHOTOS if held_out else SceneSampler(size).photos
    sampler = SceneSampler(size, SourceWeights(0.5, 0.5, 0.0), photos=photos)
    folders = []
    for i in range(count):
        scene = sampler.draw(rng)
        if renderer == "faithful":
            stack, focus_map = render_faithful(scene, n_layers, rng)
        else:
            stack, focus_map = render_physical(scene, n_layers, rng, PhysicalOptions())
        folder = Path(out) / f"stack_{i:03d}"
        files = {folder / f"layer_{k:02d}.png": encode_image(from_float(layer, np.uint16),
                                                             f"layer_{k:02d}.png")
                 for k, layer in enumerate(stack)}
        files[folder / "all_in_focus.png"] = encode_image(from_float(scene.image, np.uint16),
                                                          "all_in_focus.png")
        files[folder / "focus_map.png"] = encode_image(focus_map.astype(np.uint16), "focus_map.png")
        info = {"renderer": renderer, "layers": n_layers, "size": size, "seed": seed, "index": i}
        files[folder / "stack.json"] = json.dumps(info, indent=2).encode()
        write_files_atomically(files)
        folders.append(folder)
    return folders
