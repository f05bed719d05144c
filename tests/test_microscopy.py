"""Microscopy files end to end: the focus decided on one channel and every channel gathered
from the same layer, exactly; heights in µm; TCYX outputs that keep dtype, sizes and names."""

import numpy as np
import pytest
import tifffile
from microscopy_files import (
    NAMES,
    C,
    H,
    T,
    W,
    Z,
    hyperstack,
    ome_pixels,
    write_ome_tiff,
    write_ome_zarr,
)

from stackmff.cli import main


def cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def data():
    return hyperstack()


def check_gathered(fused: np.ndarray, source: np.ndarray, focus_map: np.ndarray) -> None:
    """Every output pixel of every channel is the input pixel at the chosen plane."""
    assert fused.shape == (T, C, H, W) and fused.dtype == np.uint16
    for t in range(T):
        index = focus_map[t].astype(np.intp)[None, None]
        expected = np.take_along_axis(source[t], np.repeat(index, C, axis=0), axis=1)[:, 0]
        np.testing.assert_array_equal(fused[t], expected)


def check_decided_on_channel_1(focus_map: np.ndarray, maps0, maps1) -> None:
    assert focus_map.shape == (T, H, W)
    assert np.mean(focus_map == maps1) > 0.85
    assert np.mean(focus_map == maps0) < 0.4


def test_ome_tiff_channel_1_decides_and_both_channels_follow(data, tmp_path, capsys):
    source, maps0, maps1 = data
    write_ome_tiff(tmp_path / "plate.ome.tif", source)
    out = tmp_path / "out"
    code, stdout, stderr = cli(capsys, "fuse", tmp_path / "plate.ome.tif", "-o",
                               out / "fused.ome.tif", "--focus-channel", "1", "--height-map",
                               out / "h.tif", "--focus-map", out / "map.tif")
    assert code == 0, stderr
    assert f"fused {T} stacks of {Z} layers of {W}x{H} x {C} channels" in stdout
    focus_map = tifffile.imread(out / "map_indices.tif")
    check_decided_on_channel_1(focus_map, maps0, maps1)
    with tifffile.TiffFile(out / "fused.ome.tif") as tif:
        assert tif.series[0].axes == "TCYX"
        fused = tif.series[0].asarray()
    check_gathered(fused, source, focus_map)
    pixels = ome_pixels(out / "fused.ome.tif")
    assert float(pixels["PhysicalSizeX"]) == 0.25 and float(pixels["PhysicalSizeY"]) == 0.25
    assert pixels["names"] == NAMES
    heights = tifffile.imread(out / "h.tif")
    assert heights.dtype == np.float32 and heights.shape == (T, H, W)
    assert set(np.unique(heights)) <= {0.0, 0.5, 1.0, 1.5, 2.0}
    np.testing.assert_array_equal(heights, focus_map * np.float32(0.5))


def test_a_channel_name_decides_as_its_index_does(data, tmp_path):
    import stackmff

    source, _, _ = data
    write_ome_tiff(tmp_path / "in.ome.tif", source)
    by_name = stackmff.fuse_files(tmp_path / "in.ome.tif", tmp_path / "a.ome.tif",
                                  focus_channel="GFP")
    stackmff.fuse_files(tmp_path / "in.ome.tif", tmp_path / "b.ome.tif", focus_channel=1)
    assert by_name.stacks == T and by_name.channels == C
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.ome.tif"),
                                  tifffile.imread(tmp_path / "b.ome.tif"))


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_round_trip(data, tmp_path, capsys, version):
    zarr = pytest.importorskip("zarr")
    source, maps0, maps1 = data
    write_ome_zarr(tmp_path / "plate.ome.zarr", source, version)
    out = tmp_path / "fused.ome.zarr"
    code, _, stderr = cli(capsys, "fuse", tmp_path / "plate.ome.zarr", "-o", out,
                          "--focus-channel", "GFP", "--height-map", tmp_path / "h.tif",
                          "--focus-map", tmp_path / "map.tif")
    assert code == 0, stderr
    focus_map = tifffile.imread(tmp_path / "map_indices.tif")
    check_decided_on_channel_1(focus_map, maps0, maps1)
    group = zarr.open_group(str(out), mode="r")
    check_gathered(np.asarray(group["0"]), source, focus_map)
    attrs = dict(group.attrs)
    ome = attrs["ome"] if version == "0.5" else attrs
    assert (ome["multiscales"][0].get("version") or ome["version"]) == version
    image = ome["multiscales"][0]
    assert [a["name"] for a in image["axes"]] == ["t", "c", "y", "x"]
    assert image["datasets"][0]["coordinateTransformations"][0]["scale"] == [1, 1, 0.25, 0.25]
    assert [c["label"] for c in ome["omero"]["channels"]] == NAMES
    heights = tifffile.imread(tmp_path / "h.tif")
    np.testing.assert_array_equal(heights, focus_map * np.float32(0.5))


def test_imagej_hyperstack_fuses_like_the_ome_tiff(data, tmp_path):
    import stackmff

    source, _, _ = data
    tifffile.imwrite(tmp_path / "ij.tif", source.transpose(0, 2, 1, 3, 4), imagej=True,
                     resolution=(4.0, 4.0),
                     metadata={"axes": "TZCYX", "spacing": 0.5, "unit": "micron"})
    write_ome_tiff(tmp_path / "ome.ome.tif", source)
    for name in ("ij.tif", "ome.ome.tif"):
        stackmff.fuse_files(tmp_path / name, tmp_path / f"{name}.out.ome.tif", focus_channel=1,
                            height_map=tmp_path / f"{name}.h.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "ij.tif.out.ome.tif"),
                                  tifffile.imread(tmp_path / "ome.ome.tif.out.ome.tif"))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "ij.tif.h.tif"),
                                  tifffile.imread(tmp_path / "ome.ome.tif.h.tif"))
    assert float(ome_pixels(tmp_path / "ij.tif.out.ome.tif")["PhysicalSizeX"]) == 0.25


def test_heights_add_the_z_origin_and_convert_the_unit(data, tmp_path):
    import stackmff

    source, _, _ = data
    write_ome_tiff(tmp_path / "in.ome.tif", source, size_z=500, z_unit="nm", position_z=12.0)
    stackmff.fuse_files(tmp_path / "in.ome.tif", tmp_path / "out.ome.tif", focus_channel=0,
                        height_map=tmp_path / "h.tif", focus_map=tmp_path / "m.tif")
    indices = tifffile.imread(tmp_path / "m_indices.tif")
    np.testing.assert_allclose(tifffile.imread(tmp_path / "h.tif"), 12.0 + 0.5 * indices)


def test_without_a_z_step_heights_are_plane_indices_with_a_warning(data, tmp_path, capsys):
    source, _, _ = data
    write_ome_tiff(tmp_path / "in.ome.tif", source, size_z=None)
    code, _, stderr = cli(capsys, "fuse", tmp_path / "in.ome.tif", "-o", tmp_path / "o.ome.tif",
                          "--height-map", tmp_path / "h.tif", "--focus-map", tmp_path / "m.tif")
    assert code == 0 and "no Z step" in stderr and "plane indices" in stderr
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "h.tif"),
                                  tifffile.imread(tmp_path / "m_indices.tif"))


def test_the_mean_channel_is_the_default_for_several_channels(data, tmp_path):
    import stackmff
    from stackmff.channel_rule import focus_plane

    source, _, _ = data
    result = stackmff.fuse_stack(source, "depthmap", axes="TCZYX")
    decided = stackmff.fuse_stack(focus_plane(source[0], "mean"), "depthmap")
    np.testing.assert_array_equal(result.focus_map[0], decided.focus_map)


def test_methods_without_a_gather_run_on_each_channel(data):
    """pyramid decides channel by channel: channel 0 of a two-channel fuse is the fuse of
    channel 0 alone, whatever channel decides the focus map."""
    import stackmff

    source, _, _ = data
    both = stackmff.fuse_stack(source, "pyramid", axes="TCZYX", focus_channel=1)
    alone = stackmff.fuse_stack(source[:, :1], "pyramid", axes="TCZYX")
    np.testing.assert_array_equal(both.fused[:, 0], alone.fused[:, 0])
    assert both.fused.dtype == np.uint16


def test_mip_is_the_maximum_of_each_channel_and_variance_a_gather(data):
    import stackmff

    source, _, _ = data
    mip = stackmff.fuse_stack(source, "mip", axes="TCZYX")
    np.testing.assert_array_equal(mip.fused, source.max(axis=2))
    variance = stackmff.fuse_stack(source, "variance", axes="TCZYX", focus_channel=0)
    check_gathered(variance.fused, source, variance.focus_map)


def test_named_axes_in_any_order_and_dask(data):
    import stackmff

    dask_array = pytest.importorskip("dask.array")
    source, _, _ = data
    reference = stackmff.fuse_stack(source, axes="TCZYX", focus_channel=1)
    swapped = stackmff.fuse_stack(source.transpose(2, 0, 3, 4, 1), axes="ZTYXC",
                                  focus_channel=1)
    lazy = stackmff.fuse_stack(dask_array.from_array(source, chunks=(1, 1, Z, H, W)),
                               axes="TCZYX", focus_channel=1)
    for other in (swapped, lazy):
        np.testing.assert_array_equal(other.fused, reference.fused)
        np.testing.assert_array_equal(other.focus_map, reference.focus_map)


def test_xarray_names_its_axes_and_keeps_its_coordinates(data):
    import stackmff

    xarray = pytest.importorskip("xarray")
    source, _, _ = data
    array = xarray.DataArray(
        source, dims=("t", "c", "z", "y", "x"),
        coords={"c": NAMES, "z": 3.0 + 0.5 * np.arange(Z), "y": 0.25 * np.arange(H),
                "x": 0.25 * np.arange(W)}, attrs={"sample": "test"})
    result = stackmff.fuse_stack(array, focus_channel="GFP")
    reference = stackmff.fuse_stack(source, axes="TCZYX", focus_channel=1)
    assert isinstance(result.fused, xarray.DataArray)
    assert result.fused.dims == ("t", "c", "y", "x") and result.fused.attrs == {"sample": "test"}
    assert list(result.fused.coords["c"].values) == NAMES
    np.testing.assert_array_equal(result.fused.values, reference.fused)
    np.testing.assert_allclose(result.heights, 3.0 + 0.5 * result.focus_map)
    assert result.metadata.size_x == 0.25


def test_a_single_channel_time_point_can_go_to_a_png(data, tmp_path):
    import cv2

    import stackmff

    source, _, _ = data
    write_ome_tiff(tmp_path / "one.ome.tif", source[:1, :1], names=None)
    stackmff.fuse_files(tmp_path / "one.ome.tif", tmp_path / "fused.png")
    fused = cv2.imread(str(tmp_path / "fused.png"), cv2.IMREAD_UNCHANGED)
    assert fused.shape == (H, W) and fused.dtype == np.uint16


def test_a_zarr_output_replaces_the_previous_one_whole(data, tmp_path):
    pytest.importorskip("zarr")
    import stackmff

    source, _, _ = data
    write_ome_tiff(tmp_path / "in.ome.tif", source)
    out = tmp_path / "fused.ome.zarr"
    stackmff.fuse_files(tmp_path / "in.ome.tif", out, method="mip")
    (out / "stale").write_text("from an earlier run")
    stackmff.fuse_files(tmp_path / "in.ome.tif", out, focus_channel=1)
    assert not (out / "stale").exists() and (out / ".zattrs").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fused.ome.zarr", "in.ome.tif"]


# bad input: one line, exit status 1, nothing written


def assert_refused(capsys, tmp_path, source, *fragments, options=()):
    out = tmp_path / "out"
    code, _, stderr = cli(capsys, "fuse", source, "-o", out / "fused.ome.tif", "--height-map",
                          out / "h.tif", *options)
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("stackmff: error:"), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists()


def test_a_file_without_z_names_its_axes(data, tmp_path, capsys):
    source, _, _ = data
    write_ome_tiff(tmp_path / "flat.ome.tif", source[:, :, 0], axes="TCYX")
    assert_refused(capsys, tmp_path, tmp_path / "flat.ome.tif", "no Z axis", "TCYX")


@pytest.mark.parametrize("channel, fragments", [
    ("RFP", ("no channel named 'RFP'", "0: DAPI, 1: GFP")),
    ("2", ("--focus-channel 2 is out of range", "2 channels")),
])
def test_bad_focus_channels(data, tmp_path, capsys, channel, fragments):
    source, _, _ = data
    write_ome_tiff(tmp_path / "in.ome.tif", source)
    assert_refused(capsys, tmp_path, tmp_path / "in.ome.tif", *fragments,
                   options=("--focus-channel", channel))


def test_axes_that_cannot_be_told_apart(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "two_unnamed.tif", np.zeros((3, 4, 16, 16), np.uint16),
                     photometric="minisblack")
    assert_refused(capsys, tmp_path, tmp_path / "two_unnamed.tif", "cannot determine",
                   "QQYX", options=("--focus-channel", "0"))


def test_an_ome_zarr_axis_that_is_not_t_c_or_z(data, tmp_path, capsys):
    pytest.importorskip("zarr")
    source, _, _ = data
    write_ome_zarr(tmp_path / "odd.ome.zarr", source, axes=("angle", "c", "z", "y", "x"))
    assert_refused(capsys, tmp_path, tmp_path / "odd.ome.zarr", "cannot determine", "size 2")


def test_vendor_files_name_the_reader_that_would_read_them(tmp_path, capsys):
    (tmp_path / "scan.czi").write_bytes(b"ZISRAWFILE" + bytes(100))
    assert_refused(capsys, tmp_path, tmp_path / "scan.czi", "Zeiss CZI", "bioio-czi")


def test_a_truncated_ome_tiff(data, tmp_path, capsys):
    source, _, _ = data
    write_ome_tiff(tmp_path / "in.ome.tif", source)
    whole = (tmp_path / "in.ome.tif").read_bytes()
    (tmp_path / "cut.ome.tif").write_bytes(whole[: len(whole) // 2])
    assert_refused(capsys, tmp_path, tmp_path / "cut.ome.tif", "cut.ome.tif")


def test_ome_zarr_without_the_extra_names_it(data, tmp_path, capsys, monkeypatch):
    pytest.importorskip("zarr")
    source, _, _ = data
    write_ome_zarr(tmp_path / "in.ome.zarr", source)
    monkeypatch.setitem(__import__("sys").modules, "zarr", None)  # as if not installed
    assert_refused(capsys, tmp_path, tmp_path / "in.ome.zarr",
                   "pip install 'stackmff[microscopy]'")


def test_plain_outputs_for_many_channels_are_refused_before_reading(data, tmp_path, capsys):
    source, _, _ = data
    write_ome_tiff(tmp_path / "in.ome.tif", source)
    code, _, stderr = cli(capsys, "fuse", tmp_path / "in.ome.tif", "-o", tmp_path / "f.png")
    assert code == 1 and ".ome.tif or .ome.zarr" in stderr
    assert not (tmp_path / "f.png").exists()


@pytest.mark.parametrize("axes, shape", [("TZYX", (3, 4, 16, 20)), ("ZCYX", (4, 3, 16, 20)),
                                         ("CZYX", (1, 4, 16, 20))])
def test_each_stack_is_read_with_its_own_planes(tmp_path, axes, shape):
    from stackmff.microscopy import open_source

    data = np.random.default_rng(5).integers(0, 65535, shape, dtype=np.uint16)
    write_ome_tiff(tmp_path / "in.ome.tif", data, axes=axes, names=None)
    full = data
    for letter in "TCZYX":  # the expected TCZYX view
        if letter not in axes:
            full = full[None]
            axes = letter + axes
    full = full.transpose([axes.index(a) for a in "TCZYX"])
    with open_source(tmp_path / "in.ome.tif") as source:
        assert source.shape == full.shape
        for t in range(full.shape[0]):
            np.testing.assert_array_equal(source.read(0, t), full[t])
