"""Write synthetic stacks to disk with their ground truth: for inspection, for other tools,
and as the ray-traced renderer's cache, which training and validation read."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from stackmff.data.faithful import render_faithful
from stackmff.data.physical import PhysicalOptions, render_physical
from stackmff.data.sources import (
    DEBIAN_TRAIN_PHOTOS,
    DEBIAN_VALIDATION_PHOTOS,
    TRAIN_PHOTOS,
    VALIDATION_PHOTOS,
    SceneSampler,
    SourceWeights,
    installed_photos,
    load_photo,
)
from stackmff.errors import StackError
from stackmff.io import write_files_atomically
from stackmff.io.image import encode_image, read_pages
from stackmff.io.pixels import from_float
from stackmff.progress import progress

RENDERERS = ("physical", "faithful", "raytraced")
# what the ray-traced stacks of each split are degraded with (the validation split mildly,
# as the benchmark suites are)
RAYTRACED_OPTIONS = {"train": PhysicalOptions(noise=0.01, jpeg=0.2),
                     "validation": PhysicalOptions(noise=0.005, jpeg=0.0)}


def stack_folder(out: str | Path, index: int) -> Path:
    return Path(out) / f"stack_{index:03d}"


@dataclass
class Rendered:
    """What a call rendered: every stack folder of the set, and how many stacks and frames
    (layers plus the truth and, ray-traced, the depth pass) it rendered in how long."""

    folders: list[Path]
    stacks: int
    frames: int
    seconds: float


def write_synthetic_stacks(out: str | Path, count: int, n_layers: int | tuple[int, int],
                           size: int, renderer: str = "physical", seed: int = 0,
                           held_out: bool = True, show_progress: bool = False) -> Rendered:
    """Render ``count`` stacks into ``out/stack_000/...``.

    Each folder holds ``layer_00.png ...`` (16-bit RGB), ``all_in_focus.png`` (the sharp
    scene), ``focus_map.png`` (16-bit ground-truth layer indices) and ``stack.json``; the
    ray-traced renderer adds ``depth.tif`` (float32 distance along the camera axis). Stack
    ``i`` is drawn from the seed ``(seed, i)`` with N drawn from ``n_layers`` (a number or an
    inclusive range), and a folder already complete is kept: a rerun continues the same set,
    and the same command rebuilds it byte for byte. ``held_out`` draws photos (and, for the
    ray-traced renderer, scene families) only from the validation side, never from training's.
    """
    if renderer not in RENDERERS:
        raise StackError(f"renderer must be one of {', '.join(RENDERERS)}, got {renderer!r}")
    low, high = (n_layers, n_layers) if isinstance(n_layers, int) else n_layers
    if low < 2 or high < low or count < 1 or size < 32:
        raise StackError(f"need layers >= 2, count >= 1, size >= 32; got {n_layers}, {count}, "
                         f"{size}")
    folders = [stack_folder(out, i) for i in range(count)]
    if renderer == "raytraced":
        _check_renderer_version(folders)
    missing = [i for i in range(count) if not (folders[i] / "stack.json").is_file()]
    if not missing:  # the set is complete: nothing to load or render
        return Rendered(folders, 0, 0, 0.0)
    if renderer == "raytraced":
        from stackmff.data.raytraced import povray_program

        try:
            povray_program()
        except RuntimeError as exc:
            raise StackError(str(exc)) from None
        names = list(VALIDATION_PHOTOS if held_out else TRAIN_PHOTOS)
        try:
            names += installed_photos(DEBIAN_VALIDATION_PHOTOS if held_out else DEBIAN_TRAIN_PHOTOS)
        except FileNotFoundError as exc:
            raise StackError(str(exc)) from None
        photos = [load_photo(name) for name in names]
    else:
        sampler = SceneSampler(size, SourceWeights(0.5, 0.5, 0.0),
                               photos=VALIDATION_PHOTOS if held_out else TRAIN_PHOTOS)
    started, frames = time.perf_counter(), 0
    for i in progress(missing, desc="render", total=len(missing), unit="stack") \
            if show_progress else missing:
        rng = np.random.default_rng([seed, i])
        n = int(rng.integers(low, high + 1))
        info = {"renderer": renderer, "layers": n, "size": size, "seed": seed, "index": i,
                "split": "validation" if held_out else "train"}
        extra: dict[Path, bytes] = {}
        if renderer == "raytraced":
            from stackmff.data.raytraced import RENDERER_VERSION, draw_and_render

            split = "validation" if held_out else "train"
            made = draw_and_render(rng, (size, size), n, photos, held_out, RAYTRACED_OPTIONS[split])
            stack, truth, focus_map = made.layers, made.truth, made.label
            extra[folders[i] / "depth.tif"] = _float_tiff(made.depth)
            info.update(version=RENDERER_VERSION,
                        focus=[round(float(f), 6) for f in made.focus],
                        aperture=round(made.aperture, 6), families=made.families,
                        photos=[Path(p).name for p in names])
        else:
            scene = sampler.draw(rng)
            if renderer == "faithful":
                stack, focus_map = render_faithful(scene, n, rng)
            else:
                stack, focus_map = render_physical(scene, n, rng, PhysicalOptions())
            truth = scene.image
        frames += n + (2 if renderer == "raytraced" else 1)
        files = {folders[i] / f"layer_{k:02d}.png": encode_image(from_float(layer, np.uint16),
                                                                 f"layer_{k:02d}.png")
                 for k, layer in enumerate(stack)}
        files[folders[i] / "all_in_focus.png"] = encode_image(from_float(truth, np.uint16),
                                                              "all_in_focus.png")
        files[folders[i] / "focus_map.png"] = encode_image(focus_map.astype(np.uint16),
                                                           "focus_map.png")
        files.update(extra)
        files[folders[i] / "stack.json"] = json.dumps(info, indent=2).encode()
        write_files_atomically(files)
    return Rendered(folders, len(missing), frames, time.perf_counter() - started)


def renderer_version(folder: str | Path) -> int:
    """The version of the renderer that wrote a stack folder (1: before the ray-traced
    aperture's calibration, which did not write it)."""
    return json.loads((Path(folder) / "stack.json").read_text()).get("version", 1)


def _check_renderer_version(folders: list[Path]) -> None:
    """A set continues only with stacks of the renderer that made it: ray-traced stacks of
    another version (an older aperture calibration) are refused in one line, never mixed in
    or overwritten."""
    from stackmff.data.raytraced import RENDERER_VERSION

    for folder in folders:
        if (folder / "stack.json").is_file():
            version = renderer_version(folder)
            if version != RENDERER_VERSION:
                raise StackError(f"{folder.parent} holds ray-traced stacks of renderer version "
                                 f"{version}, this one is {RENDERER_VERSION}: render into a "
                                 f"new folder (or delete that one)")


def _float_tiff(values: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, values.astype(np.float32), compression="zlib")
    return buffer.getvalue()


def read_synthetic_stack(folder: str | Path) -> dict:
    """One written stack: ``layers`` (N, H, W[, 3]) uint16, ``truth``, ``focus_map`` and, for
    ray-traced stacks, ``depth``; ``info`` is its stack.json."""
    folder = Path(folder)
    info = json.loads((folder / "stack.json").read_text())
    stack = {"info": info,
             "layers": np.stack([read_pages(folder / f"layer_{k:02d}.png")[0]
                                 for k in range(info["layers"])]),
             "truth": read_pages(folder / "all_in_focus.png")[0],
             "focus_map": read_pages(folder / "focus_map.png")[0].astype(np.int64)}
    if (folder / "depth.tif").is_file():
        stack["depth"] = tifffile.imread(folder / "depth.tif")
    return stack
