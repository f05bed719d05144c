
import numpy as np
import pytest
import tifffile
from PIL import Image

import stackmff
from stackmff.errors import StackError
from stackmff.io import expand_inputs, load_stack, read_pages, write_image
from stackmff.testing import make_stack, write_stack


def test_folders_sort_naturally_and_skip_non_images(tmp_path):
    layers, _, _ = make_stack(n_layers=3)
    write_stack(tmp_path, layers, names=["10.png", "2.png", "1.png"])
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="skipped 1 non-image file.*notes.txt"):
        paths = expand_inputs([tmp_path])
    assert [p.name for p in paths] == ["1.png", "2.png", "10.png"]


def test_glob_and_file_list_give_the_same_stack(tmp_path):
    layers, _, _ = make_stack(n_layers=3)
    paths = write_stack(tmp_path, layers)
    by_glob = load_stack(str(tmp_path / "layer_*.png"))
    by_list = load_stack(paths)
    np.testing.assert_array_equal(by_glob.layers, by_list.layers)
    assert by_list.layers.shape == (3, 90, 124) and by_list.layers.dtype == np.float32


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("colour", [False, True], ids=["grey", "colour"])
def test_round_trip_keeps_bit_depth(tmp_path, suffix, dtype, colour):
    layers, _, _ = make_stack(n_layers=3, colour=colour)
    paths = write_stack(tmp_path / "in", layers, dtype=dtype, suffix=suffix)
    stack = load_stack(paths)
    assert stack.dtype == dtype
    scale = np.iinfo(dtype).max
    np.testing.assert_allclose(stack.layers, np.rint(layers * scale) / scale, atol=1e-6)
    result = stackmff.fuse_stack(stack)
    out = tmp_path / f"fused{suffix}"
    stackmff.save_result(result, stack, out)
    written = read_pages(out)[0]
    assert written.dtype == dtype
    assert written.shape == layers.shape[1:]
    np.testing.assert_array_equal(written, stack.to_output(result.fused))


def test_multi_page_tiff_is_a_stack(tmp_path):
    layers, _, _ = make_stack(n_layers=5)
    data = (layers * 65535).round().astype(np.uint16)
    path = tmp_path / "zstack.tif"
    tifffile.imwrite(path, data)
    stack = load_stack(path)
    assert len(stack) == 5 and stack.dtype == np.uint16
    np.testing.assert_allclose(stack.layers, data / 65535.0, atol=1e-7)


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :10] = 255  # white strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    Image.fromarray(image).save(path, exif=exif, quality=95)
    page = read_pages(path)[0]
    assert page.shape == (40, 20, 3)
    assert page[:10].mean() > 200 and page[-10:].mean() < 50  # strip now on top


def test_alpha_is_dropped_with_a_warning(tmp_path):
    rgba = np.full((8, 8, 4), 200, np.uint8)
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    with pytest.warns(UserWarning, match="alpha channel dropped"):
        page = read_pages(path)[0]
    assert page.shape == (8, 8, 3)


def test_grey_layers_join_a_colour_stack(tmp_path):
    layers, _, _ = make_stack(n_layers=2, colour=True)
    paths = write_stack(tmp_path, layers)
    write_image((layers[0, ..., 0] * 255).astype(np.uint8), tmp_path / "grey.png")
    stack = load_stack(paths + [tmp_path / "grey.png"])
    assert stack.layers.shape == (3, 90, 124, 3)
    np.testing.assert_array_equal(stack.layers[2, ..., 0], stack.layers[2, ..., 2])


@pytest.mark.parametrize("case", ["empty", "single", "sizes", "corrupt", "missing"])
def test_bad_stacks_raise_stack_error(tmp_path, case):
    layers, _, _ = make_stack(n_layers=2)
    if case == "empty":
        inputs, message = [tmp_path], "no images found"
    elif case == "single":
        inputs, message = write_stack(tmp_path, layers[:1]), "at least 2 images, got 1"
    elif case == "sizes":
        small, _, _ = make_stack(n_layers=1, height=40, width=50)
        inputs = write_stack(tmp_path, layers) + write_stack(tmp_path, small, names=["s.png"])
        message = r"differ in size \(124x90: layer_0.png, layer_1.png; 50x40: s.png\)"
    elif case == "corrupt":
        inputs = write_stack(tmp_path, layers)
        inputs[1].write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        message = "cannot decode .*layer_1.png"
    else:
        inputs, message = [tmp_path / "nothere"], "no such file or folder"
    with pytest.raises(StackError, match=message):
        load_stack(inputs)


def test_failed_write_leaves_no_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StackError, match="cannot write"):
        write_image(np.zeros((4, 4), np.uint8), blocker / "sub" / "out.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_unknown_output_type_writes_nothing(tmp_path):
    with pytest.raises(StackError, match="unsupported file type"):
        write_image(np.zeros((4, 4), np.uint8), tmp_path / "out.xyz")
    assert list(tmp_path.iterdir()) == []


def test_lzw_tiff_reads_without_extra_codecs(tmp_path):
    import cv2

    image = (np.random.default_rng(0).random((20, 30, 3)) * 65535).astype(np.uint16)
    path = tmp_path / "lzw.tif"
    cv2.imwrite(str(path), image[..., ::-1], [cv2.IMWRITE_TIFF_COMPRESSION, 5])
    np.testing.assert_array_equal(read_pages(path)[0], image)


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    path = tmp_path / "out.png"
    write_image(np.zeros((4, 4), np.uint8), path)
    current = os.umask(0)
    os.umask(current)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~current)
