"""The v3+ head's training stacks with the frozen network's logits, computed once and cached.

Only the small head trains, so a step costs a fraction of a network step once the network's
logits are on disk. Each stack is rendered by the physical renderer from the training scenes
(never the held-out validation photos), or read from a folder of stacks that `stackmff synth`
wrote (``[cache] rendered``: the ray-traced training split; ``rendered_every = k`` takes
every k-th stack from there and renders the others), stored as 8-bit colour as the
benchmark stacks are,
turned into luma as inference does, and put through the network forward that inference uses.
One file per stack (``stack_XXXXX.npz``), each written atomically: an interrupted build goes
on where it stopped. ``cache.json`` holds the settings the stacks were made with (the
network's file by its hash), so stacks of other settings never mix into a run.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from stackmff.data.physical import PhysicalOptions, render_physical
from stackmff.data.sources import SceneSampler, SourceWeights
from stackmff.errors import StackError
from stackmff.io.atomic import write_files_atomically
from stackmff.io.pixels import from_float
from stackmff.stack_ops import luma, to_float, window_luma
from stackmff.training.head_config import CacheConfig
from stackmff.training.network_target import training_device
from stackmff.weights import network_weights

MANIFEST = "cache.json"
# 2: where layers serve a pixel alike, its label is the layer focused at its depth;
# 3: the settings name the share of emitted-light stacks
FORMAT = 3
# the keys that do not change what stack i holds
NOT_STORED = ("folder", "network", "device", "stacks", "held_out")


def stack_path(folder: Path, index: int) -> Path:
    return folder / f"stack_{index:05d}.npz"


def cache_settings(cache: CacheConfig) -> dict:
    """What every cached stack depends on: the render settings, the network's weights and,
    with ``rendered``, the version of the renderer that wrote that folder."""
    values = {k: v for k, v in asdict(cache).items() if k not in NOT_STORED}
    digest = hashlib.sha256(network_weights(cache.network).read_bytes()).hexdigest()
    settings = {"format": FORMAT, **values, "network_sha256": digest}
    if cache.rendered:
        from stackmff.data.export import renderer_version, stack_folder

        # a folder not yet rendered has no version; building the cache refuses it
        first = stack_folder(cache.rendered, 0)
        if (first / "stack.json").is_file():
            settings["rendered_version"] = renderer_version(first)
    return settings


def check_cache(cache: CacheConfig) -> dict:
    """The settings of ``cache``, once its folder is known to hold only stacks made with them.

    Raises:
        StackError: the network file is missing, or the folder holds other stacks.
    """
    folder = Path(cache.folder)
    if folder.exists() and not folder.is_dir():
        raise StackError(f"[cache] folder = {cache.folder!r} is a file, not a folder")
    settings = cache_settings(cache)
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            stored = json.loads(manifest.read_text())
        except (OSError, ValueError):
            raise StackError(f"cannot read {manifest}: give [cache] folder a new folder") \
                from None
        stored = stored if isinstance(stored, dict) else {}
        changed = [k for k in settings if stored.get(k) != settings[k]]
        if changed:
            raise StackError(f"{folder} holds stacks cached with other settings "
                             f"({', '.join(changed)}): give [cache] folder a new folder")
    elif any(folder.glob("stack_*.npz")):
        raise StackError(f"{folder} holds cached stacks but no {MANIFEST} (an older "
                         f"stackmff's cache): give [cache] folder a new folder")
    return settings


def render_cached(sampler: SceneSampler, n: int, rng: np.random.Generator,
                  options: PhysicalOptions) -> dict:
    """One training stack as inference sees it: 8-bit colour layers, their luma, the label
    map and the truth's luma."""
    scene = sampler.draw(rng)
    stack, label, truth = render_physical(scene, n, rng, options, return_truth=True)
    layers = from_float(stack, np.dtype(np.uint8))
    return {"layers": layers, "grey": window_luma(layers), "label": label.astype(np.uint8),
            "truth": luma(to_float(from_float(truth, np.dtype(np.uint8))))}


def read_rendered(folder: Path, index: int, crop: int) -> dict:
    """Stack ``index`` of a folder that `stackmff synth` wrote (:func:`build_cache` has
    checked that it is there), centre-cropped to ``crop``, as inference sees it; its label
    is the layer closest to the truth, as for rendered stacks here."""
    from stackmff.data.export import read_synthetic_stack, stack_folder
    from stackmff.training.rendered import camera_view

    stack = read_synthetic_stack(stack_folder(folder, index))
    height, width = stack["truth"].shape[:2]
    y, x = max(0, (height - crop) // 2), max(0, (width - crop) // 2)
    layers, truth, label = camera_view(stack, (slice(y, y + crop), slice(x, x + crop)))
    return {"layers": layers, "grey": window_luma(layers), "label": label.astype(np.uint8),
            "truth": luma(truth)}


def build_cache(cache: CacheConfig, progress: bool = False) -> int:
    """Write every stack below ``cache.stacks`` not yet in the folder; stack ``i`` is drawn
    from the seed ``(seed, i)``, so a rerun continues the same set. Returns how many were
    written. The network is loaded only when a stack is missing."""
    from stackmff.fusion.network_method import prepare_network  # inference code: on use

    settings = check_cache(cache)
    folder = Path(cache.folder)
    missing = [i for i in range(cache.stacks) if not stack_path(folder, i).is_file()]
    if not missing:
        return 0
    if cache.rendered:  # every stack the cache takes from the folder is there, before any work
        from stackmff.data.export import stack_folder

        for i in missing:
            if i % cache.rendered_every == 0:
                path = stack_folder(cache.rendered, i // cache.rendered_every)
                if not (path / "stack.json").is_file():
                    raise StackError(f"[cache] rendered = {cache.rendered!r} holds no complete "
                                     f"{path.name}: render it first (stackmff synth ... -o "
                                     f"{cache.rendered})")
    device = training_device(cache.device, "[cache] device").type
    fuser = prepare_network(cache.network, device=device, tile=None)
    if not (folder / MANIFEST).is_file():
        write_files_atomically({folder / MANIFEST: json.dumps(settings, indent=1).encode()})
    cv2.setNumThreads(1)
    sampler = SceneSampler(cache.crop, SourceWeights(cache.dead_leaves, cache.photos,
                                                     cache.motorcycle, cache.photo_folder,
                                                     cache.debian_photos))
    options = PhysicalOptions(noise=cache.noise, jpeg=cache.jpeg, label="error",
                              highlights=cache.highlights,
                              plateaus=cache.plateaus, emission=cache.emission)
    for i in tqdm(missing, desc="cache", disable=not progress):
        if cache.rendered and i % cache.rendered_every == 0:
            sample = read_rendered(Path(cache.rendered), i // cache.rendered_every, cache.crop)
        else:
            rng = np.random.default_rng([cache.seed, i])
            n = int(rng.integers(cache.min_layers, cache.max_layers + 1))
            sample = render_cached(sampler, n, rng, options)
        logits = fuser.logits(sample["grey"]).float().cpu().numpy()
        buffer = io.BytesIO()
        np.savez(buffer, grey=sample["grey"], logits=logits, label=sample["label"],
                 truth=sample["truth"])
        write_files_atomically({stack_path(folder, i): buffer.getvalue()})
    return len(missing)


def load_stack(path: Path) -> dict:
    """One cached stack: ``grey``, ``logits`` (both ``[N, H, W]``), ``label``, ``truth``."""
    try:
        with np.load(path) as data:
            return {k: data[k] for k in ("grey", "logits", "label", "truth")}
    except (OSError, ValueError, KeyError) as exc:
        raise StackError(f"cannot read cached stack {path} ({exc}): delete it and the run "
                         f"caches it again") from None
