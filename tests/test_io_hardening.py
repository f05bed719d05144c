"""Hostile inputs to stack reading: odd TIFF layouts, damaged files, huge headers, repeats."""

import io
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile

import stackmff.io.stack as stack_module
from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.io import expand_inputs, load_stack, read_pages
from stackmff.testing import make_stack, write_stack

RNG = np.random.default_rng(7)


def rgb_image(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


def grey_pages(n: int = 8, height: int = 24, width: int = 32) -> np.ndarray:
    return (np.random.default_rng(1).random((n, height, width)) * 255).astype(np.uint8)


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width x height`` RGB pixels but carries almost no data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("stackmff: error:"), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# D1: sample and channel axes wherever they sit


def test_planar_rgb_tiffs_are_colour_layers(tmp_path):
    images = [rgb_image(seed=k) for k in range(4)]
    for k, image in enumerate(images):
        tifffile.imwrite(tmp_path / f"{k}.tif", image.transpose(2, 0, 1), photometric="rgb",
                         planarconfig="separate")
    stack = load_stack(tmp_path)
    assert stack.layers.shape == (4, 24, 32, 3)
    np.testing.assert_allclose(stack.layers * 255, np.stack(images), atol=1e-3)


def test_planar_rgb_tiffs_fuse_to_colour_on_the_command_line(tmp_path, capsys):
    layers, _, _ = make_stack(n_layers=4, height=40, width=48, colour=True)
    folder = tmp_path / "stack"
    folder.mkdir()
    for k, layer in enumerate((layers * 255).round().astype(np.uint8)):
        tifffile.imwrite(folder / f"{k}.tif", layer.transpose(2, 0, 1), photometric="rgb",
                         planarconfig="separate")
    code, stdout, stderr = cli(capsys, "fuse", folder, "-o", tmp_path / "out.png",
                               "--method", "pyramid")
    assert code == 0, stderr
    assert "fused 4 layers" in stdout
    assert read_pages(tmp_path / "out.png")[0].shape == (40, 48, 3)


def test_multi_page_planar_rgb_tiff_is_a_colour_stack(tmp_path):
    images = np.stack([rgb_image(seed=k) for k in range(3)])
    tifffile.imwrite(tmp_path / "z.tif", images.transpose(0, 3, 1, 2), photometric="rgb",
                     planarconfig="separate")
    stack = load_stack(tmp_path / "z.tif")
    assert stack.layers.shape == (3, 24, 32, 3)
    np.testing.assert_allclose(stack.layers * 255, images, atol=1e-3)


def test_channel_axis_of_three_is_colour(tmp_path):
    images = np.stack([rgb_image(seed=k) for k in range(3)])
    tifffile.imwrite(tmp_path / "zc.tif", images.transpose(0, 3, 1, 2), imagej=True,
                     metadata={"axes": "ZCYX"})
    stack = load_stack(tmp_path / "zc.tif")
    assert stack.layers.shape == (3, 24, 32, 3)
    np.testing.assert_allclose(stack.layers * 255, images, atol=1e-3)


def test_unsupported_tiff_axes_name_the_layout(tmp_path):
    channels = (RNG.random((3, 5, 24, 32)) * 255).astype(np.uint8)
    path = tmp_path / "five_channels.tif"
    tifffile.imwrite(path, channels, imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(StackError, match=r"five_channels.tif.*ZCYX"):
        load_stack(path)


# D2: multi-page TIFFs never lose layers silently


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_truncated_multi_page_tiff_is_an_error(tmp_path, compression):
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, grey_pages(), compression=compression)
    data = buffer.getvalue()
    path = tmp_path / "cut.tif"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StackError, match=r"cut.tif.*(damaged|truncated)"):
        load_stack(path)


def test_damaged_tiff_gives_one_line_and_no_log_chatter(tmp_path):
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, grey_pages(), compression="zlib")
    data = buffer.getvalue()
    path = tmp_path / "cut.tif"
    path.write_bytes(data[: len(data) // 2])
    process = subprocess.run([sys.executable, "-m", "stackmff", "fuse", str(path), "-o",
                              str(tmp_path / "out.png")], capture_output=True, text=True)
    lines = process.stderr.strip().splitlines()
    assert process.returncode == 1 and len(lines) == 1, process.stderr
    assert lines[0].startswith("stackmff: error:") and "cut.tif" in lines[0]
    assert not (tmp_path / "out.png").exists()


def test_tiff_split_into_series_gives_every_page(tmp_path):
    pages = grey_pages()
    path = tmp_path / "series.tif"
    with tifffile.TiffWriter(path) as writer:
        for page in pages:
            writer.write(page)
    stack = load_stack(path)
    assert len(stack) == 8
    np.testing.assert_allclose(stack.layers * 255, pages, atol=1e-3)


def test_tiff_series_of_different_shapes_is_an_error(tmp_path):
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(grey_pages(n=3), photometric="minisblack")
        writer.write(grey_pages(n=1, height=10, width=10)[0])
    with pytest.raises(StackError, match="mixed.tif.*differ"):
        load_stack(path)


# D4: empty and oversized files


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
@pytest.mark.parametrize("where", ["folder", "command line"])
def test_empty_file_is_a_one_line_error(tmp_path, capsys, suffix, where):
    layers, _, _ = make_stack(n_layers=2, height=20, width=24)
    folder = tmp_path / "stack"
    paths = write_stack(folder, layers)
    empty = folder / f"empty{suffix}"
    empty.write_bytes(b"")
    inputs = [folder] if where == "folder" else [*paths, empty]
    code, _, stderr = cli(capsys, "fuse", *inputs, "-o", tmp_path / "out.png")
    assert_one_line_error(code, stderr, f"empty{suffix}")
    assert not (tmp_path / "out.png").exists()


def test_png_declaring_a_huge_size_is_a_one_line_error(tmp_path, capsys):
    layers, _, _ = make_stack(n_layers=2, height=20, width=24)
    paths = write_stack(tmp_path / "stack", layers)
    huge = tmp_path / "stack" / "huge.png"
    huge.write_bytes(png_with_header(100000, 100000))
    code, _, stderr = cli(capsys, "fuse", *paths, huge, "-o", tmp_path / "out.png")
    assert_one_line_error(code, stderr, "huge.png", "100000x100000")


# D8: TIFF orientation


def test_tiff_orientation_is_applied(tmp_path):
    image = np.zeros((20, 40), np.uint8)
    image[:, :10] = 255  # white strip on the left
    path = tmp_path / "rotated.tif"
    tifffile.imwrite(path, image, extratags=[(274, "H", 1, 6, True)])  # display: 90 deg CW
    page = read_pages(path)[0]
    assert page.shape == (40, 20)
    assert page[:10].mean() > 200 and page[-10:].mean() < 50  # strip now on top


# D9: declared sizes against memory, before decoding


def test_stack_too_big_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    for k in range(3):  # tiny files that declare 20000 x 20000 RGB each
        (tmp_path / f"{k}.png").write_bytes(png_with_header(20000, 20000))
    monkeypatch.setattr(stack_module, "available_memory", lambda: 2 * 1024**3)
    with pytest.raises(StackError, match=r"needs about 18\.0 GB.*only 2\.1 GB"):
        load_stack(tmp_path)


def test_memory_check_lets_a_fitting_stack_through(tmp_path, monkeypatch):
    layers, _, _ = make_stack(n_layers=3, height=20, width=24)
    write_stack(tmp_path, layers)
    monkeypatch.setattr(stack_module, "available_memory", lambda: 10 * 1024**2)
    assert len(load_stack(tmp_path)) == 3
    monkeypatch.setattr(stack_module, "available_memory", lambda: None)  # unknown: no check
    assert len(load_stack(tmp_path)) == 3


def test_available_memory_is_a_positive_count_or_unknown():
    memory = stack_module.available_memory()
    assert memory is None or (isinstance(memory, int) and memory > 0)


# D12: the same file twice


@pytest.mark.parametrize("how", ["file twice", "folder and its file", "glob and file"])
def test_same_file_twice_is_refused(tmp_path, how):
    layers, _, _ = make_stack(n_layers=3, height=20, width=24)
    paths = write_stack(tmp_path, layers)
    inputs = {"file twice": [paths[0], paths[1], paths[0]],
              "folder and its file": [tmp_path, paths[1]],
              "glob and file": [str(tmp_path / "*.png"), tmp_path / ".." / tmp_path.name
                                / paths[2].name]}[how]
    expected = paths[1].name if how == "folder and its file" else paths[0 if how == "file twice"
                                                                        else 2].name
    with pytest.raises(StackError, match=f"{expected}.*twice"):
        expand_inputs(inputs)


# D13: quiet errors, one alpha warning per stack


def test_truncated_png_gives_no_decoder_chatter(tmp_path, capfd):
    layers, _, _ = make_stack(n_layers=2, height=40, width=48)
    paths = write_stack(tmp_path, layers)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(StackError, match="cannot decode .*layer_1.png"):
        load_stack(paths)
    assert capfd.readouterr().err == ""


def test_png_with_a_damaged_chunk_gives_no_decoder_chatter(tmp_path, capfd):
    layers, _, _ = make_stack(n_layers=2, height=40, width=48)
    paths = write_stack(tmp_path, layers)
    data = bytearray(paths[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    paths[0].write_bytes(bytes(data))
    with pytest.raises(StackError, match="cannot decode .*layer_0.png"):
        load_stack(paths)
    assert capfd.readouterr().err == ""


def test_alpha_warning_comes_once_per_stack(tmp_path):
    for k in range(3):
        Image.fromarray(np.full((8, 8, 4), 50 * k, np.uint8), "RGBA").save(tmp_path / f"{k}.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stack = load_stack(tmp_path)
    messages = [str(w.message) for w in caught if "alpha" in str(w.message)]
    assert stack.layers.shape == (3, 8, 8, 3)
    assert len(messages) == 1 and "3 files" in messages[0], messages


def test_png_exif_orientation_is_applied(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :10] = 255  # white strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.png"
    Image.fromarray(image).save(path, exif=exif)
    page = read_pages(path)[0]
    assert page.shape == (40, 20, 3)
    assert page[:10].mean() > 200 and page[-10:].mean() < 50


def test_png_without_exif_is_decoded_once(tmp_path, monkeypatch):
    path = tmp_path / "plain.png"
    Image.fromarray(rgb_image()).save(path)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("Pillow decoded"))
    np.testing.assert_array_equal(read_pages(path)[0], rgb_image())
