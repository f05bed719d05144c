"""Benchmark suites with ground truth, built reproducibly from fixed seeds.

Synthetic suites use the physical renderer on scenes with true depth (the Middlebury
motorcycle in scikit-image; the Middlebury Aloe in Debian's opencv-doc, when installed) and on
held-out photos with procedural depth, and rendered microscope stacks (widefield
fluorescence, brightfield) in 16 bit. Variants are the paper's experiments: stack size N,
layer order, fully blurred interference layers, pairs. Real suites come from ../shared/data
when present (Devernay's ray-traced office, the Lytro EPFL #48 focal stack, two HCI light fields refocused
over all their views). The validation suites render only images that no training run draws
from, to judge a trained model; the out-of-domain suites hold only stacks that the physical
renderer, which the shipped model was trained on, never made: the real ones, a ray-traced
split (held-out seeds, photos and scene families) and the rendered microscope stacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stackmff.data.physical import PhysicalOptions, render_physical
from stackmff.data.scenes import Scene, motorcycle, procedural_depth
from stackmff.data.sources import DEBIAN_VALIDATION_PHOTOS, VALIDATION_PHOTOS, load_photo
from stackmff.data.specimens import brightfield_stack, fluorescence_stack

ALOE_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
STACK_SIZES = (2, 5, 9, 16, 24, 32)
QUICK_STACK_SIZES = (2, 9, 24)
OPTIONS = PhysicalOptions(noise=0.005, label="error")


@dataclass
class BenchStack:
    """One stack to fuse. ``truth``: all-in-focus image or None; ``focus_map``: the true
    layer per pixel (synthetic suites) or None; ``group`` ties the stacks that the ranking
    compares (one stack, several variants)."""

    suite: str
    variant: str
    name: str
    layers: np.ndarray
    truth: np.ndarray | None
    focus_map: np.ndarray | None = None
    dtype: np.dtype = np.dtype(np.uint8)


def _centre_crop(scene: Scene, height: int, width: int) -> Scene:
    h, w = scene.depth.shape
    y, x = max(0, (h - height) // 2), max(0, (w - width) // 2)
    return Scene(scene.image[y:y + height, x:x + width], scene.depth[y:y + height, x:x + width])


def aloe() -> Scene | None:
    """Middlebury Aloe (opencv-doc): left view, depth = 1 / ground-truth disparity."""
    image_path, disparity_path = ALOE_DIR / "aloeL.jpg", ALOE_DIR / "aloeGT.png"
    if not (image_path.is_file() and disparity_path.is_file()):
        return None
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    disparity = cv2.imread(str(disparity_path), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    valid = disparity > 0
    disparity = cv2.inpaint(np.where(valid, disparity, 0).astype(np.float32),
                            (~valid).astype(np.uint8), 5, cv2.INPAINT_TELEA)
    return Scene(image, 1.0 / np.maximum(disparity, 1.0))


def scenes(quick: bool) -> dict[str, Scene]:
    """The synthetic scenes, each cropped (never resized) to a benchmark size."""
    height, width = (192, 256) if quick else (384, 512)
    found = {"motorcycle": _centre_crop(motorcycle(), height, width)}
    aloe_scene = aloe()
    if aloe_scene is not None:
        found["aloe"] = _centre_crop(aloe_scene, height, width)
    for i, name in enumerate(("hubble_deep_field", "camera")[: 1 if quick else 2]):
        found[f"procedural-{name}"] = _procedural_scene(name, height, width, seed=i)
    return found


def _procedural_scene(photo_name: str, height: int, width: int, seed: int) -> Scene:
    """A photo, centre-cropped, with procedural depth made for the crop."""
    photo = load_photo(photo_name)
    crop = _centre_crop(Scene(photo, np.ones(photo.shape[:2], np.float32)), height, width)
    return Scene(crop.image, procedural_depth(crop.image, np.random.default_rng(seed)))


def _render(scene: Scene, n: int, seed: int, interference: int = 0):
    return render_physical(scene, n, np.random.default_rng(seed), OPTIONS, shuffle=False,
                           interference=interference)


def order_variants(suite: str, name: str, scene: Scene, randoms: int) -> Iterator[BenchStack]:
    """One 9-layer stack ordered near to far, reversed, and in ``randoms`` random orders."""
    layers, focus_map = _render(scene, 9, seed=9)
    orders = {"ordered": np.arange(9), "reversed": np.arange(9)[::-1]}
    for i in range(randoms):
        orders[f"random {i + 1}"] = np.random.default_rng(100 + i).permutation(9)
    for variant, order in orders.items():
        yield BenchStack(suite, variant, name, layers[order], scene.image,
                         np.argsort(order)[focus_map])


def interference_variants(suite: str, name: str, scene: Scene,
                          extras: tuple[int, ...]) -> Iterator[BenchStack]:
    """One 14-layer stack with each count in ``extras`` of fully blurred layers mixed in."""
    base, base_map = _render(scene, 14, seed=14)
    for extra in extras:
        junk = np.stack([cv2.GaussianBlur(scene.image, (31, 31), 0)] * extra) if extra else None
        stacked = base if junk is None else np.concatenate([base, junk])
        order = np.random.default_rng(200 + extra).permutation(len(stacked))
        yield BenchStack(suite, f"14 + {extra} blurred", name, stacked[order], scene.image,
                         np.argsort(order)[base_map])


def synthetic_stacks(quick: bool = False) -> Iterator[BenchStack]:
    """Stack-size sweep on every scene, then order, interference and pair variants."""
    sizes = QUICK_STACK_SIZES if quick else STACK_SIZES
    all_scenes = scenes(quick)
    for scene_name, scene in all_scenes.items():
        for n in sizes:
            layers, focus_map = _render(scene, n, seed=n)
            yield BenchStack("stack-size", f"N={n}", scene_name, layers, scene.image, focus_map)
    first_name, first = next(iter(all_scenes.items()))
    yield from order_variants("order", first_name, first, randoms=1 if quick else 3)
    yield from interference_variants("interference", first_name, first,
                                     (3,) if quick else (0, 3, 7, 14))
    if quick:  # N=2 of the sweep is the small-stack case there
        return
    for scene_name, scene in all_scenes.items():
        layers, focus_map = _render(scene, 2, seed=2)
        yield BenchStack("pairs", "N=2", scene_name, layers, scene.image, focus_map)


VALIDATION_SIZES = (2, 5, 9, 16, 24)
VALIDATION_SHAPE = (256, 320)


def held_out_scenes() -> dict[str, Scene]:
    """Aloe with its true depth and the held-out photos (scikit-image; opencv-doc and
    lomiri-wallpapers where installed) with procedural depth, centre-cropped."""
    height, width = VALIDATION_SHAPE
    found = {}
    aloe_scene = aloe()
    if aloe_scene is not None:
        found["aloe"] = _centre_crop(aloe_scene, height, width)
    names = list(VALIDATION_PHOTOS) + [p for p in DEBIAN_VALIDATION_PHOTOS if Path(p).is_file()]
    for i, name in enumerate(names):
        found[Path(name).stem.split("_by_")[0]] = _procedural_scene(name, height, width,
                                                                    seed=1000 + i)
    return found


def validation_size_stacks(scenes: dict[str, Scene],
                           sizes=VALIDATION_SIZES) -> Iterator[BenchStack]:
    """The "validation" suite: every scene at every N in ``sizes``."""
    for scene_name, scene in scenes.items():
        for n in sizes:
            layers, focus_map = _render(scene, n, seed=n)
            yield BenchStack("validation", f"N={n}", scene_name, layers, scene.image, focus_map)


def validation_stacks() -> Iterator[BenchStack]:
    """Every held-out scene at every N in VALIDATION_SIZES, then the order and interference
    tests on three of them."""
    all_scenes = held_out_scenes()
    yield from validation_size_stacks(all_scenes)
    tested = list(all_scenes.items())[::4][:3]
    for scene_name, scene in tested:
        yield from order_variants("validation-order", scene_name, scene, randoms=3)
    for scene_name, scene in tested:
        yield from interference_variants("validation-interference", scene_name, scene,
                                         (0, 3, 7, 14))


def real_stacks(data: Path) -> Iterator[BenchStack]:
    """Ground-truth stacks from ../shared/data, when present."""
    from stackmff.io import load_stack, read_pages
    from stackmff.io.pixels import to_float

    office = data / "devernay-office-povray" / "office_stereo1"
    if office.is_dir():
        truth = to_float(read_pages(office / "office_stereo1_all.png")[0])
        for variant, suffix in (("blur 5", ""), ("blur 10", "2")):
            stack = load_stack([office / f"office_stereo1_near{suffix}.png",
                                office / f"office_stereo1_far{suffix}.png"])
            yield BenchStack("devernay-office", variant, "office_stereo1", stack.layers,
                             truth, None, stack.dtype)
    lytro = data / "lytro-refocus-epfl48"
    if lytro.is_dir():
        stack = load_stack(lytro / "stack")
        reference = lytro / "reference" / "afocus_lytro.png"
        truth = to_float(read_pages(reference)[0])
        yield BenchStack("lytro-epfl48", "9 slices", "48", stack.layers, truth, None, stack.dtype)


def hci_stacks(data: Path) -> Iterator[BenchStack]:
    """The HCI light fields refocused into 9 planes, and their even planes as N = 5, with the
    centre view as the truth and the plane nearest the true disparity as the map."""
    from stackmff.io import load_stack, read_pages
    from stackmff.io.pixels import to_float

    root = data / "hci-lightfield"
    for scene in ("antinous", "backgammon"):
        folder = root / scene
        if not folder.is_dir():
            continue
        truth = to_float(read_pages(folder / "reference" / "all_in_focus.png")[0])
        layers = sorted((folder / "stack").glob("*.png"))
        for variant, chosen, index in (("N=9", layers, "focus_index.png"),
                                       ("N=5", layers[::2], "focus_index_n5.png")):
            stack = load_stack(chosen)
            focus_map = read_pages(folder / "reference" / index)[0]
            yield BenchStack("hci-lightfield", variant, scene, stack.layers, truth,
                             focus_map.astype(np.int64), stack.dtype)


# the ray-traced validation split: stack i from the seed (1000, i), held-out photos and scene
# families; rendered on first use into its folder, kept there for the next run
RAYTRACED_SPLIT = {"count": 12, "n_layers": (3, 12), "size": 192, "seed": 1000}
RAYTRACED_SIZES = {"N=3-5": (3, 5), "N=6-8": (6, 8), "N=9-12": (9, 12)}


def raytraced_stacks(folder: Path) -> Iterator[BenchStack]:
    """The ray-traced validation split, grouped by stack size; written for the methods as
    8-bit files, as a camera's JPEGs or the other suites' stacks are."""
    from stackmff.data.export import read_synthetic_stack, write_synthetic_stacks

    rendered = write_synthetic_stacks(folder, renderer="raytraced", held_out=True,
                                      show_progress=True, **RAYTRACED_SPLIT)
    for stack_folder in rendered.folders:
        stack = read_synthetic_stack(stack_folder)
        n = stack["info"]["layers"]
        variant = next(name for name, (low, high) in RAYTRACED_SIZES.items() if low <= n <= high)
        yield BenchStack("raytraced", variant, stack_folder.name,
                         stack["layers"].astype(np.float32) / 65535,
                         stack["truth"].astype(np.float32) / 65535, stack["focus_map"])


MICROSCOPY_PLANES = 16


def microscopy_stacks(quick: bool = False) -> Iterator[BenchStack]:
    """Rendered 16-bit microscope stacks: widefield fluorescence (the membrane channel of
    cells at random depths; its truth is every cell in focus, no true map: the haze has no
    layer) and brightfield (a stained specimen on a tilted, curved slide, with its map):
    stepped, the slide's depth rounded to the planes, and continuous, blurred by its true
    distance as a lens does (:mod:`stackmff.data.specimens`)."""
    height, width = (192, 256) if quick else (256, 320)
    uint16 = np.dtype(np.uint16)
    for seed in (0,) if quick else (0, 1, 2):
        stack, truth = fluorescence_stack(MICROSCOPY_PLANES, height, width, seed=seed)
        yield BenchStack("microscopy", "fluorescence", f"cells-{seed}", stack[1], truth[1],
                         None, uint16)
    slides = (("brightfield", False), ("continuous brightfield", True))
    for variant, continuous in slides[:1] if quick else slides:
        for seed in (0,) if quick else (0, 1, 2):
            stack, truth, depth = brightfield_stack(MICROSCOPY_PLANES, height, width,
                                                    seed=seed, continuous=continuous)
            yield BenchStack("microscopy", variant, f"slide-{seed}", stack, truth, depth,
                             uint16)
