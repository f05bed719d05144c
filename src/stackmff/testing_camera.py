"""Camera files with known content, made on the fly: Bayer DNG focus stacks (written with
tifffile and the DNG tags, read back by LibRaw), JPEG layers carrying a known ICC profile and
EXIF, and HEIC layers; for the tests and the README's examples, never downloaded.

The DNG's camera is simple on purpose: its colour matrix makes the camera's space linear
sRGB, so a layer developed into linear sRGB gives back the scene, and a frame's as-shot white
balance (AsShotNeutral) is the camera's response to white, by which the scene is multiplied.
Not imported by ``import stackmff``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from stackmff.testing import make_stack

BLACK, WHITE = 512, 16383          # a 14-bit sensor with a black offset
# XYZ (D65) -> linear sRGB: the DNG's ColorMatrix1 (XYZ to camera) for a camera seeing sRGB
XYZ_TO_SRGB = (3.2404542, -1.5371385, -0.4985314, -0.9692660, 1.8760108, 0.0415560,
               0.0556434, -0.2040259, 1.0572252)
# what the tagged layers say, as Exiv2 keys and values
CAMERA_EXIF = {
    "Exif.Image.Make": "Synthetica", "Exif.Image.Model": "Macro One",
    "Exif.Photo.LensModel": "Macro 100mm F2.8", "Exif.Photo.FNumber": "28/10",
    "Exif.Photo.ExposureTime": "1/125", "Exif.Photo.ISOSpeedRatings": "200",
    "Exif.Photo.DateTimeOriginal": "2024:05:01 10:20:30",
    "Exif.GPSInfo.GPSLatitudeRef": "N", "Exif.GPSInfo.GPSLatitude": "52/1 31/1 1234/100",
    "Exif.GPSInfo.GPSLongitudeRef": "E", "Exif.GPSInfo.GPSLongitude": "13/1 24/1 150/100",
}


def _rationals(values, denominator: int = 10000) -> list[int]:
    out: list[int] = []
    for value in values:
        out += [int(round(value * denominator)), denominator]
    return out


def mosaic(rgb: np.ndarray) -> np.ndarray:
    """An RGGB Bayer mosaic of ``(H, W, 3)``: each photosite keeps one colour."""
    cfa = np.empty(rgb.shape[:2], rgb.dtype)
    cfa[0::2, 0::2] = rgb[0::2, 0::2, 0]
    cfa[0::2, 1::2] = rgb[0::2, 1::2, 1]
    cfa[1::2, 0::2] = rgb[1::2, 0::2, 1]
    cfa[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return cfa


RESPONSE = (0.5, 1.0, 0.7)          # the sensor's response to white


def write_dng(path: Path, scene: np.ndarray, neutral=RESPONSE,
              exif: dict[str, str] | None = None, orientation: int = 1) -> Path:
    """A 14-bit RGGB DNG of ``scene`` (linear sRGB floats in [0, 1]) as the sensor records
    it (:data:`RESPONSE`), with ``neutral`` as the camera's as-shot white balance (its
    estimate of the response; an automatic white balance makes it differ from frame to
    frame). ``exif`` (Exiv2 keys) is added with Exiv2."""
    import tifffile

    raw = mosaic(np.asarray(scene, np.float64) * np.asarray(RESPONSE))
    values = np.clip(np.rint(BLACK + raw * (WHITE - BLACK)), 0, WHITE).astype(np.uint16)
    make = (exif or {}).get("Exif.Image.Make", "Synthetica")
    model = (exif or {}).get("Exif.Image.Model", "Macro One")
    tags = [(50706, "B", 4, (1, 4, 0, 0), True), (50707, "B", 4, (1, 1, 0, 0), True),
            (50708, "s", 0, f"{make} {model}", True), (33421, "H", 2, (2, 2), True),
            (33422, "B", 4, (0, 1, 1, 2), True), (50721, "2i", 9, _rationals(XYZ_TO_SRGB), True),
            (50778, "H", 1, 21, True), (50728, "2I", 3, _rationals(neutral), True),
            (50714, "H", 1, BLACK, True), (50717, "H", 1, WHITE, True),
            (271, "s", 0, make, True), (272, "s", 0, model, True),
            (274, "H", 1, orientation, True)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, values, photometric=32803, extratags=tags, subfiletype=0,
                     metadata=None)
    if exif:
        import pyexiv2

        with pyexiv2.Image(str(path)) as image:
            image.modify_exif({k: v for k, v in exif.items() if not k.startswith("Exif.Image.")})
    return path


def scene_stack(n_layers: int, height: int, width: int, seed: int = 0):
    """``(layers, focus_map)``: linear colour layers in [0.03, 0.55] (room for white balance
    below the white level), each sharp in its band."""
    layers, _, focus_map = make_stack(n_layers, height, width, colour=True, seed=seed,
                                      blur_per_layer=2.0)
    return 0.03 + 0.52 * layers, focus_map


def dng_stack(folder: Path, n_layers: int = 5, height: int = 64, width: int = 96,
              seed: int = 0, neutrals=None, exif: dict[str, str] | None = None,
              distances=None) -> tuple[list[Path], np.ndarray]:
    """A folder of DNG layers (``IMG_<k>.dng``) and the focus map they were made with.
    ``neutrals`` gives each frame its own as-shot white balance; ``distances`` each frame's
    focus distance in metres (EXIF SubjectDistance)."""
    layers, focus_map = scene_stack(n_layers, height, width, seed)
    paths = []
    for k, layer in enumerate(layers):
        tags = dict(exif or {})
        if distances is not None:
            tags["Exif.Photo.SubjectDistance"] = str(Fraction(distances[k]).limit_denominator(1000))
        neutral = RESPONSE if neutrals is None else neutrals[k]
        paths.append(write_dng(Path(folder) / f"IMG_{k + 1:04d}.dng", layer, neutral,
                               tags or None))
    return paths, focus_map


def tagged_exif(orientation: int = 1):
    """The EXIF of :data:`CAMERA_EXIF` as Pillow writes it (camera, lens, exposure, date,
    GPS), with ``orientation``."""
    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational

    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Synthetica", "Macro One", orientation
    exif[0x0132] = "2024:05:01 10:20:30"
    photo = exif.get_ifd(0x8769)
    photo[0x829A], photo[0x829D] = IFDRational(1, 125), IFDRational(28, 10)
    photo[0x8827], photo[0x9003] = 200, "2024:05:01 10:20:30"
    photo[0xA434] = "Macro 100mm F2.8"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (IFDRational(52, 1), IFDRational(31, 1), IFDRational(1234, 100))
    gps[3], gps[4] = "E", (IFDRational(13, 1), IFDRational(24, 1), IFDRational(150, 100))
    return exif


def photo_stack(folder: Path, n_layers: int = 3, height: int = 64, width: int = 80,
                suffix: str = ".jpg", icc: bytes | None = None, seed: int = 0,
                exif=None) -> list[Path]:
    """Colour layers written by Pillow with ``icc`` and EXIF (default :func:`tagged_exif`)
    in every layer."""
    from PIL import Image

    layers, _, _ = make_stack(n_layers, height, width, colour=True, seed=seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    exif = tagged_exif() if exif is None else exif
    paths = []
    for k, layer in enumerate(layers):
        path = folder / f"IMG_{k + 1:04d}{suffix}"
        extra = {"quality": 95} if suffix == ".jpg" else {}
        Image.fromarray((layer * 255).round().astype(np.uint8)).save(
            path, exif=exif.tobytes(), **({"icc_profile": icc} if icc else {}), **extra)
        paths.append(path)
    return paths


def heic_stack(folder: Path, n_layers: int = 3, height: int = 48, width: int = 64,
               orientation: int = 1, seed: int = 0) -> tuple[list[Path], np.ndarray]:
    """10-bit HEIC layers (lossless-ish quality) and the 10-bit values written; with an
    ``orientation`` other than 1 the files say how to turn them upright."""
    import pillow_heif

    layers, _, _ = make_stack(n_layers, height, width, colour=True, seed=seed)
    values = np.rint(layers * 1023).astype(np.uint16)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, layer in enumerate(values):
        image = pillow_heif.from_bytes("RGB;16", (width, height), (layer << 6).tobytes())
        path = folder / f"IMG_{k + 1:04d}.heic"
        image.save(path, quality=-1, chroma=444, exif=tagged_exif(orientation).tobytes())
        paths.append(path)
    return paths, values
