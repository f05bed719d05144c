"""Camera files in, camera files out: RAW stacks developed with one set of settings, HEIC at
its bit depth and upright, the layers' ICC profile and one layer's metadata carried into the
fused image, and every bad camera file refused in one line. Every file is made here."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pillow_heif
import pyexiv2
import pytest
import rawpy
import tifffile
from PIL import Image

from stackmff.cli import main
from stackmff.io import load_stack
from stackmff.io.colour import encode, profile
from stackmff.stack_ops import gather
from stackmff.testing_camera import CAMERA_EXIF, dng_stack, heic_stack, photo_stack, write_dng


def fuse(capsys, *args: str) -> tuple[int, str]:
    code = main(["fuse", *map(str, args), "-q"])
    return code, capsys.readouterr().err


def indices(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def away_from_band_edges(focus_map: np.ndarray, margin: int = 4) -> np.ndarray:
    """Columns at least ``margin`` pixels from a change of band."""
    row = focus_map[0]
    edges = np.flatnonzero(np.diff(row)) + 0.5
    columns = np.arange(len(row))
    far = np.all(np.abs(columns[:, None] - edges[None, :]) > margin, axis=1)
    return np.broadcast_to(far, focus_map.shape)


def developed(path: Path, white_balance, space=rawpy.ColorSpace.sRGB) -> np.ndarray:
    """One layer developed as docs/camera-files.md states, straight through rawpy."""
    with rawpy.imread(str(path)) as raw:
        return raw.postprocess(
            demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD, use_camera_wb=False,
            use_auto_wb=False, user_wb=list(white_balance), output_color=space,
            output_bps=16, gamma=(1, 1), no_auto_bright=True, adjust_maximum_thr=0.0)


def as_shot(path: Path) -> list[float]:
    with rawpy.imread(str(path)) as raw:
        balance = list(raw.camera_whitebalance)
    return balance[:3] + [balance[3] or balance[1]]


@pytest.fixture(scope="module")
def dngs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dng") / "stack"
    paths, focus_map = dng_stack(folder, n_layers=6, height=64, width=120, exif=CAMERA_EXIF,
                                 distances=[0.30, 0.31, 0.32, 0.33, 0.34, 0.35])
    return folder, paths, focus_map


def test_a_dng_stack_fuses_to_16_bit_srgb_copying_the_developed_pixels(dngs, tmp_path, capsys):
    folder, paths, truth = dngs
    out, picture = tmp_path / "out.tif", tmp_path / "map.png"
    code, err = fuse(capsys, folder, "-o", out, "--focus-map", picture)
    assert code == 0, err
    fused = tifffile.imread(out)
    assert fused.dtype == np.uint16 and fused.shape == truth.shape + (3,)
    chosen = indices(tmp_path / "map_indices.png")
    far = away_from_band_edges(truth)
    assert np.mean(chosen[far] == truth[far]) >= 0.99
    # every pixel: the sRGB encoding of the linear develop of the layer the map chose, every
    # layer developed with the reference (middle) layer's as-shot white balance
    balance = as_shot(paths[len(paths) // 2])
    linear = np.stack([developed(p, balance) for p in paths])
    assert np.array_equal(fused, gather(encode(linear, "srgb"), chosen))
    with tifffile.TiffFile(out) as tif:
        assert bytes(tif.pages.first.tags.valueof(34675)) == profile("srgb")


def test_the_srgb_encoding_is_the_srgb_curve():
    values = np.array([0, 100, 202, 1000, 20000, 65535], np.uint16)
    linear = values / 65535
    curve = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    assert np.array_equal(encode(values, "srgb"), np.rint(curve * 65535).astype(np.uint16))


def test_linear_output_holds_exactly_the_linear_develop(dngs, tmp_path, capsys):
    from PIL import ImageCms

    folder, paths, truth = dngs
    out, picture = tmp_path / "linear.png", tmp_path / "map.png"
    code, err = fuse(capsys, folder, "-o", out, "--focus-map", picture, "--colour-space",
                     "linear")
    assert code == 0, err
    fused = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    chosen = indices(tmp_path / "map_indices.png")
    far = away_from_band_edges(truth)
    assert np.mean(chosen[far] == truth[far]) >= 0.99  # decided on the perceptual view
    balance = as_shot(paths[len(paths) // 2])
    linear = np.stack([developed(p, balance) for p in paths])
    assert np.array_equal(fused, gather(linear, chosen))
    icc = Image.open(out).info["icc_profile"]
    assert icc == profile("linear")
    # LittleCMS reads the profile as linear light: 50% grey is sRGB's 188
    to_srgb = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                      ImageCms.ImageCmsProfile(io.BytesIO(profile("srgb"))),
                                      "RGB", "RGB")
    grey = ImageCms.applyTransform(Image.new("RGB", (1, 1), (128, 128, 128)), to_srgb)
    assert grey.getpixel((0, 0)) == (188, 188, 188)


def test_linear_light_in_an_8_bit_file_is_refused_before_any_pixel(dngs, tmp_path, capsys):
    folder, _, _ = dngs
    code, err = fuse(capsys, folder, "-o", tmp_path / "o.jpg", "--colour-space", "linear")
    assert code == 1 and "16 bits" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_the_same_stack_developed_twice_gives_the_same_bytes(dngs, tmp_path, capsys):
    folder, _, _ = dngs
    for name in ("a.tif", "b.tif"):
        assert fuse(capsys, folder, "-o", tmp_path / name)[0] == 0
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()


def test_white_balance_is_taken_once_for_the_stack(tmp_path, capsys):
    """Frames whose as-shot white balance differs (auto white balance on the camera) come
    out in one colour: a grey strip has the same RGB in every layer and every band."""
    neutrals = [(0.45, 1.0, 0.80), (0.55, 1.0, 0.60), (0.50, 1.0, 0.70), (0.62, 1.0, 0.55)]
    folder = tmp_path / "stack"
    paths, truth = dng_stack(folder, n_layers=4, height=64, width=96, neutrals=neutrals)
    from stackmff.testing_camera import BLACK, RESPONSE, WHITE, mosaic

    for path in paths:  # a flat grey strip across every frame, as the sensor records it
        with rawpy.imread(str(path)) as raw:
            cfa = raw.raw_image.copy()
        grey = np.full((16, 96, 3), 0.2)
        cfa[:16] = np.rint(BLACK + mosaic(grey * np.asarray(RESPONSE)) * (WHITE - BLACK))
        with tifffile.TiffFile(path) as tif:
            tags = [(t.code, t.dtype, t.count, t.value, True) for t in tif.pages.first.tags
                    if t.code >= 33421 and t.code != 34665]
        tifffile.imwrite(path, cfa, photometric=32803, extratags=tags, subfiletype=0,
                         metadata=None)
    stack = load_stack(folder, floats=False)
    strip = stack.layers[:, 4:12, 4:-4].reshape(len(paths), -1, 3).mean(axis=1)
    assert np.all(np.abs(strip / strip[0] - 1) < 0.01), strip
    # each frame's own balance would not: the test can tell the difference
    own = np.stack([developed(p, as_shot(p))[4:12, 4:-4].reshape(-1, 3).mean(axis=0)
                    for p in paths])
    assert np.max(np.abs(own / own[0] - 1)) > 0.05
    out = tmp_path / "out.tif"
    assert fuse(capsys, folder, "-o", out, "--focus-map", tmp_path / "m.png")[0] == 0
    fused, chosen = tifffile.imread(out), indices(tmp_path / "m_indices.png")
    bands = [fused[4:12][chosen[4:12] == k] for k in range(len(paths))]
    means = np.stack([b.mean(axis=0) for b in bands if len(b) > 8])
    assert len(means) >= 2
    assert np.all(np.abs(means / means[0] - 1) < 0.01), means


def exif_of(path: Path) -> dict:
    """What Pillow reads back: camera, lens, exposure, date, GPS."""
    exif = Image.open(path).getexif()
    photo, gps = exif.get_ifd(0x8769), exif.get_ifd(0x8825)
    return {"Make": exif.get(0x010F), "Model": exif.get(0x0110),
            "LensModel": photo.get(0xA434), "FNumber": float(photo.get(0x829D)),
            "ExposureTime": float(photo.get(0x829A)), "ISO": photo.get(0x8827),
            "DateTimeOriginal": photo.get(0x9003),
            "GPS": {k: gps.get(k) for k in (1, 2, 3, 4)}}


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_exif_icc_and_xmp_are_carried_from_the_reference_layer(suffix, tmp_path, capsys):
    icc = profile("adobe-rgb")  # a known profile that is not the default sRGB
    from stackmff.testing_camera import tagged_exif

    paths = photo_stack(tmp_path / "shots", n_layers=3, icc=icc, exif=tagged_exif(6))
    out = tmp_path / f"fused{suffix}"
    code, err = fuse(capsys, tmp_path / "shots", "-o", out)
    assert code == 0, err
    source = exif_of(paths[1])
    assert source["Make"] == "Synthetica" and source["GPS"][2]  # the layer has them
    assert exif_of(out) == source
    written = Image.open(out)
    assert written.getexif().get(0x0112) == 1       # upright pixels, no turn asked for
    assert written.size == (64, 80)                 # turned by orientation 6 from 80x64
    assert written.info["icc_profile"] == icc
    with pyexiv2.Image(str(out)) as image:
        xmp, exif = image.read_xmp(), image.read_exif()
    assert xmp["Xmp.stackmff.Method"] == "depthmap" and xmp["Xmp.stackmff.Layers"] == "3"
    assert xmp["Xmp.stackmff.SourceFiles"] == [p.name for p in paths]
    assert xmp["Xmp.stackmff.MetadataFrom"] == paths[1].name
    assert exif["Exif.Image.Software"].startswith("stackmff")
    assert (exif["Exif.Photo.PixelXDimension"], exif["Exif.Photo.PixelYDimension"]) == \
        ("64", "80")


def test_a_dng_stacks_exif_and_focus_distances_reach_the_output(dngs, tmp_path, capsys):
    folder, paths, _ = dngs
    out = tmp_path / "out.tif"
    assert fuse(capsys, folder, "-o", out)[0] == 0
    with pyexiv2.Image(str(out)) as image:
        exif, xmp = image.read_exif(), image.read_xmp()
    for key, value in CAMERA_EXIF.items():
        assert exif[key] == value, key
    assert not [k for k in exif if "DNG" in k or "CFA" in k or "ColorMatrix" in k]
    assert exif["Exif.Image.PhotometricInterpretation"] == "2"  # still an RGB TIFF
    assert xmp["Xmp.stackmff.FocusDistances"] == ["0.3", "0.31", "0.32", "0.33", "0.34",
                                                  "0.35"]
    assert tifffile.imread(out).shape == (64, 120, 3)


def test_metadata_from_chooses_the_layer_or_none(tmp_path, capsys):
    paths = photo_stack(tmp_path / "shots", n_layers=3)
    for k, path in enumerate(paths):  # each layer its own date
        with pyexiv2.Image(str(path)) as image:
            image.modify_exif({"Exif.Photo.DateTimeOriginal": f"2024:05:01 10:20:3{k}"})
    out = tmp_path / "first.jpg"
    assert fuse(capsys, tmp_path / "shots", "-o", out, "--metadata-from", "0")[0] == 0
    assert exif_of(out)["DateTimeOriginal"] == "2024:05:01 10:20:30"
    bare = tmp_path / "bare.png"
    assert fuse(capsys, tmp_path / "shots", "-o", bare, "--metadata-from", "none")[0] == 0
    assert not Image.open(bare).getexif()
    code, err = fuse(capsys, tmp_path / "shots", "-o", tmp_path / "x.png", "--metadata-from", "3")
    assert code == 1 and "0 to 2" in err and not (tmp_path / "x.png").exists()


def test_heic_layers_are_fused_upright_at_their_bit_depth(tmp_path, capsys):
    paths, written = heic_stack(tmp_path / "phone", n_layers=3, orientation=6)
    out, picture = tmp_path / "out.png", tmp_path / "map.png"
    code, err = fuse(capsys, tmp_path / "phone", "-o", out, "--focus-map", picture)
    assert code == 0, err
    fused = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert fused.dtype == np.uint16 and fused.shape == (64, 48, 3)   # turned upright
    decoded = []
    for path in paths:  # libheif's own decode, scaled from 10 bits to 16
        values = np.asarray(pillow_heif.open_heif(str(path), convert_hdr_to_8bit=False)) >> 6
        decoded.append(np.rint(values * (65535 / 1023)).astype(np.uint16))
    assert np.array_equal(fused, gather(np.stack(decoded), indices(tmp_path / "map_indices.png")))
    assert len(np.unique(fused)) > 256 and np.any(fused % 257)       # more than 8 bits
    # upright: orientation 6 turns the stored image a quarter clockwise
    turned = np.rot90(written[0], k=-1) * (65535 / 1023)
    assert np.abs(decoded[0] - turned).mean() < np.abs(decoded[0] - turned[::-1, ::-1]).mean()
    assert Image.open(out).getexif().get(0x0112) == 1


def test_align_registers_a_raw_stack(tmp_path, capsys):
    from stackmff.testing_camera import scene_stack

    layers, _ = scene_stack(4, 96, 128, seed=2)
    for k, layer in enumerate(layers):
        write_dng(tmp_path / "stack" / f"IMG_{k}.dng", np.roll(layer, (2 * k, -2 * k), (0, 1)))
    out = tmp_path / "aligned.tif"
    code, err = fuse(capsys, tmp_path / "stack", "--align", "--model", "translation",
                     "-o", out)
    assert code == 0, err
    fused = tifffile.imread(out)
    assert fused.dtype == np.uint16 and fused.shape[2] == 3
    assert fused.shape[0] <= 96 - 6 and fused.shape[1] <= 128 - 6  # cropped to the overlap


def test_stackmff_align_writes_a_raw_stacks_layers_as_tiffs(tmp_path, capsys):
    dng_stack(tmp_path / "stack", n_layers=3, height=32, width=48)
    assert main(["align", str(tmp_path / "stack"), "-o", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").glob("*.tif"))
    assert written == ["IMG_0001.tif", "IMG_0002.tif", "IMG_0003.tif"]
    with tifffile.TiffFile(tmp_path / "out" / written[0]) as tif:
        assert tif.pages.first.dtype == np.uint16
        assert bytes(tif.pages.first.tags.valueof(34675)) == profile("srgb")


def test_batch_fuses_raw_stacks_with_their_metadata(tmp_path):
    from stackmff.batch import fuse_many

    for name in ("A1", "A2"):
        dng_stack(tmp_path / "plate" / name, n_layers=3, height=32, width=48, exif=CAMERA_EXIF)
    results = fuse_many([tmp_path / "plate"], tmp_path / "out", format="tif", workers=1,
                        colour_space="linear")
    assert [r.status for r in results] == ["ok", "ok"], [r.error for r in results]
    for name in ("A1", "A2"):
        out = tmp_path / "out" / f"{name}.tif"
        assert tifffile.imread(out).dtype == np.uint16
        with pyexiv2.Image(str(out)) as image:
            assert image.read_exif()["Exif.Photo.LensModel"] == CAMERA_EXIF["Exif.Photo.LensModel"]
            assert image.read_icc() == profile("linear")
    assert results[0].options["colour_space"] == "linear"


# bad camera files: one line, exit status 1, nothing written


def one_line_failure(capsys, tmp_path, *args, expect: str) -> None:
    before = set(tmp_path.rglob("*"))
    code, err = fuse(capsys, *args)
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert expect in err, err
    assert set(tmp_path.rglob("*")) == before


def test_a_raw_file_libraw_cannot_decode(dngs, tmp_path, capsys):
    folder, paths, _ = dngs
    stack = tmp_path / "stack"
    stack.mkdir()
    for path in paths[:3]:
        (stack / path.name).write_bytes(path.read_bytes())
    (stack / "IMG_0002.dng").write_bytes(b"II*\0" + bytes(100))
    (stack / "IMG_0009.cr3").write_bytes(b"not a raw file at all")
    one_line_failure(capsys, tmp_path, stack, "-o", tmp_path / "o.tif", expect="LibRaw")


def test_a_truncated_heic(tmp_path, capsys):
    paths, _ = heic_stack(tmp_path / "phone", n_layers=3)
    paths[1].write_bytes(paths[1].read_bytes()[:400])
    one_line_failure(capsys, tmp_path, tmp_path / "phone", "-o", tmp_path / "o.png",
                     expect="IMG_0002.heic")


def test_a_corrupt_icc_profile(tmp_path, capsys):
    photo_stack(tmp_path / "shots", n_layers=3)
    bad = tmp_path / "shots" / "IMG_0002.jpg"
    image = Image.open(bad)
    image.load()
    image.save(bad, icc_profile=b"\0\0\1\0" + b"not a profile" * 30, exif=image.getexif())
    one_line_failure(capsys, tmp_path, tmp_path / "shots", "-o", tmp_path / "o.jpg",
                     expect="ICC profile is damaged")


def test_layers_with_different_profiles(tmp_path, capsys):
    photo_stack(tmp_path / "shots", n_layers=3, icc=profile("srgb"))
    other = tmp_path / "shots" / "IMG_0003.jpg"
    image = Image.open(other)
    image.load()
    image.save(other, icc_profile=profile("adobe-rgb"))
    one_line_failure(capsys, tmp_path, tmp_path / "shots", "-o", tmp_path / "o.png",
                     expect="different ICC profiles")


def test_a_stack_mixing_raw_and_jpeg(dngs, tmp_path, capsys):
    folder, paths, _ = dngs
    jpegs = photo_stack(tmp_path / "shots", n_layers=2, height=64, width=120)
    one_line_failure(capsys, tmp_path, paths[0], paths[1], jpegs[0], "-o", tmp_path / "o.tif",
                     expect="mixes RAW files")


def test_colour_space_is_for_raw_stacks(tmp_path, capsys):
    photo_stack(tmp_path / "shots", n_layers=2)
    one_line_failure(capsys, tmp_path, tmp_path / "shots", "-o", tmp_path / "o.tif",
                     "--colour-space", "prophoto", expect="RAW")


def test_exif_too_large_for_a_jpeg_is_a_warning(tmp_path, capsys):
    """EXIF lives in one 64 KB block (a JPEG's APP1 segment): a tag that does not fit is left
    out with a warning naming it; the image and the rest of the metadata are written."""
    from stackmff.testing_camera import tagged_exif

    exif = tagged_exif()
    exif[0x010E] = "x" * 70000     # ImageDescription
    photo_stack(tmp_path / "shots", n_layers=3, suffix=".png", exif=exif)
    code, err = fuse(capsys, tmp_path / "shots", "-o", tmp_path / "o.jpg")
    assert code == 0 and "too large for a JPEG APP1 segment" in err and "Traceback" not in err
    assert "ImageDescription (70,000 bytes)" in err and len(err.strip().splitlines()) == 1
    written = Image.open(tmp_path / "o.jpg").getexif()
    assert 0x010E not in written and written[0x010F] == "Synthetica"  # the rest is kept
    with pyexiv2.Image(str(tmp_path / "o.jpg")) as image:  # and the XMP record
        assert image.read_xmp()["Xmp.stackmff.Layers"] == "3"


@pytest.mark.parametrize("module, extra, suffix", [("rawpy", "raw", ".dng"),
                                                   ("pillow_heif", "heif", ".heic")])
def test_without_the_extra_the_error_names_it(module, extra, suffix, tmp_path):
    for k in range(2):
        (tmp_path / f"IMG_{k}{suffix}").write_bytes(b"\0" * 64)
    program = (f"import sys; sys.modules[{module!r}] = None\n"
               "from stackmff.cli import main\n"
               f"sys.exit(main(['fuse', {str(tmp_path)!r}, '-o', {str(tmp_path / 'o.tif')!r}]))")
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip() == (f'stackmff: error: {"RAW" if extra == "raw" else "HEIC/HEIF"}'
                                  f' files need {"LibRaw" if extra == "raw" else "libheif"}: '
                                  f'pip install "stackmff[{extra}]"')
    assert not (tmp_path / "o.tif").exists()
