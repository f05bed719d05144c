"""Where training scenes come from, drawn at random with fixed weights.

``dead_leaves``: unlimited synthetic scenes with occlusion depth. ``photos``: photos with
procedural depth (the scikit-image photos listed in TRAIN_PHOTOS, optionally the sharp photos
of the Debian packages ``opencv-doc`` and ``lomiri-wallpapers-16.04`` listed in
DEBIAN_TRAIN_PHOTOS, plus any folder of the user's own photos). ``motorcycle``: the
Middlebury scene with true depth. Held-out photos (VALIDATION_PHOTOS,
DEBIAN_VALIDATION_PHOTOS) are never drawn for training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from stackmff.data.scenes import (
    Scene,
    dead_leaves,
    motorcycle,
    photo_files,
    procedural_depth,
    random_crop,
    skimage_photo,
)

TRAIN_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina")
VALIDATION_PHOTOS = ("hubble_deep_field", "camera", "coins", "brick", "grass", "gravel")

OPENCV_DOC = "/usr/share/doc/opencv-doc/examples/data"
WALLPAPERS = "/usr/share/backgrounds"
# Sharp, natural photos only: no charts, text, drawings, or shallow depth of field (the
# renderer takes the photo as all-in-focus). Near-duplicate views stay on one side.
DEBIAN_TRAIN_PHOTOS = tuple(
    [f"{OPENCV_DOC}/{name}" for name in (
        "aero1.jpg", "apple.jpg", "basketball1.png", "box_in_scene.png", "butterfly.jpg",
        "graf1.png", "HappyFish.jpg", "home.jpg", "messi5.jpg", "orange.jpg",
        "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "stuff.jpg")]
    + [f"{WALLPAPERS}/{name}" for name in (
        "aitzgorri_by_Aitzol_Berasategi.jpg", "analogpattern_by_Peter_Nerlich.jpg",
        "friends_by_Aitzol_Berasategi.jpg", "life_by_Aitzol_Berasategi.jpg",
        "Picture_0B_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg")])
DEBIAN_VALIDATION_PHOTOS = (
    f"{OPENCV_DOC}/baboon.jpg", f"{OPENCV_DOC}/building.jpg", f"{OPENCV_DOC}/fruits.jpg",
    f"{OPENCV_DOC}/leuvenA.jpg", f"{WALLPAPERS}/picosdeeuropa_by_Aitzol_Berasategi.jpg")
# large photos are scaled down before synthesis so that a crop holds a scene, not a patch
MAX_PHOTO_SIDE = 1024


def installed_photos(paths: tuple[str, ...]) -> list[str]:
    """The Debian photos among ``paths`` that are installed; a clear error if none is."""
    found = [p for p in paths if Path(p).is_file()]
    if not found:
        raise FileNotFoundError("the Debian training photos are not installed: run "
                                "scripts/setup_training.sh (opencv-doc, lomiri-wallpapers-16.04)")
    return found


@dataclass(frozen=True)
class SourceWeights:
    dead_leaves: float = 0.5
    photos: float = 0.4
    motorcycle: float = 0.1
    photo_folder: str | None = None
    debian_photos: bool = False


@lru_cache(maxsize=64)
def load_photo(name: str) -> np.ndarray:
    """A training photo as float32 RGB in [0, 1]: a file path or a scikit-image name."""
    if Path(name).is_file():
        image = cv2.imread(name, cv2.IMREAD_COLOR)
        scale = MAX_PHOTO_SIDE / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    image = skimage_photo(name)
    return np.dstack([image] * 3) if image.ndim == 2 else image


@lru_cache(maxsize=1)
def _motorcycle() -> Scene:
    return motorcycle()


@dataclass
class SceneSampler:
    """Draws training scenes of ``size`` x ``size`` (RGB) from the weighted sources."""

    size: int
    weights: SourceWeights = field(default_factory=SourceWeights)
    photos: tuple[str, ...] = TRAIN_PHOTOS

    def __post_init__(self) -> None:
        names = list(self.photos)
        if self.weights.debian_photos:
            names += installed_photos(DEBIAN_TRAIN_PHOTOS)
        if self.weights.photo_folder:
            names += [str(p) for p in photo_files(self.weights.photo_folder)]
        self._photos = names

    def draw(self, rng: np.random.Generator) -> Scene:
        w = self.weights
        kinds = ["dead_leaves", "photos", "motorcycle"]
        p = np.array([w.dead_leaves, w.photos if self._photos else 0.0, w.motorcycle])
        kind = kinds[rng.choice(3, p=p / p.sum())]
        if kind == "dead_leaves":
            return dead_leaves(self.size, rng)
        if kind == "motorcycle":
            return _augment(random_crop(_motorcycle(), self.size, rng), rng)
        image = load_photo(self._photos[rng.integers(len(self._photos))])
        # depth is made for a crop slightly larger than needed, then cropped
        crop = random_crop(Scene(image, np.ones(image.shape[:2], np.float32)),
                           min(self.size * 2, min(image.shape[:2])), rng).image
        scene = Scene(crop, procedural_depth(crop, rng))
        return _augment(random_crop(scene, self.size, rng), rng)


def _augment(scene: Scene, rng: np.random.Generator) -> Scene:
    """Random flips and 90-degree turns, applied to image and depth alike."""
    image, depth = scene.image, scene.depth
    if rng.random() < 0.5:
        image, depth = image[:, ::-1], depth[:, ::-1]
    if rng.random() < 0.5:
        image, depth = image[::-1], depth[::-1]
    turns = int(rng.integers(4))
    image, depth = np.rot90(image, turns), np.rot90(depth, turns)
    return Scene(np.ascontiguousarray(image), np.ascontiguousarray(depth))
