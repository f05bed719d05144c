"""Microscopy files under hostile input: OME-XML that does not match its pages, metadata whose
heights are NaN or overflow, NaN pixels in float data, OME-Zarr chunks missing from the store.
Each is refused in one line with nothing written, or read as promised with a warning."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from microscopy_files import H, T, W, Z, hyperstack, write_ome_tiff, write_ome_zarr

from stackmff.cli import main
from stackmff.microscopy.source import Source


@pytest.fixture(scope="module")
def data():
    return hyperstack()[0]


def cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, tmp_path, source, *fragments, height_map=True):
    out = tmp_path / "out"
    options = ("--height-map", out / "h.tif") if height_map else ()
    code, _, stderr = cli(capsys, "fuse", source, "-o", out / "fused.ome.tif", *options)
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("stackmff: error:"), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists()


def edit_xml(path: Path, edit) -> None:
    """Rewrite the OME-XML of the first page as ``edit(xml)``."""
    with tifffile.TiffFile(path) as tif:
        xml = tif.pages[0].description
    tifffile.tiffcomment(path, edit(xml).encode())


# H3: OME-XML that does not parse or does not match the pages


@pytest.mark.parametrize("height_map", [True, False])
def test_declared_sizes_that_do_not_match_the_pages_are_refused(data, tmp_path, capsys,
                                                                height_map):
    path = tmp_path / "wide.ome.tif"
    write_ome_tiff(path, data)
    edit_xml(path, lambda xml: xml.replace(f'SizeX="{W}"', f'SizeX="{2 * W}"'))
    refused(capsys, tmp_path, path, "wide.ome.tif", "does not match its pages",
            f"SizeX {2 * W}", f"{W} x {H}", height_map=height_map)


def test_declared_planes_that_are_not_the_pages_are_refused(data, tmp_path, capsys):
    path = tmp_path / "deep.ome.tif"
    write_ome_tiff(path, data)
    edit_xml(path, lambda xml: xml.replace(f'SizeZ="{Z}"', f'SizeZ="{Z + 1}"'))
    refused(capsys, tmp_path, path, "does not match its pages",
            f"{T * 2 * (Z + 1)} planes", f"{T * 2 * Z} pages")


@pytest.mark.parametrize("name", ["cut.ome.tif", "cut.tif"])
@pytest.mark.parametrize("height_map", [True, False])
def test_a_truncated_ome_xml_is_refused(data, tmp_path, capsys, name, height_map):
    path = tmp_path / name
    write_ome_tiff(path, data)
    edit_xml(path, lambda xml: xml[: len(xml) // 2])
    refused(capsys, tmp_path, path, name, "OME-XML does not parse", height_map=height_map)


def test_an_intact_ome_tiff_still_reads(data, tmp_path, capsys):
    write_ome_tiff(tmp_path / "in.ome.tif", data)
    code, stdout, stderr = cli(capsys, "fuse", tmp_path / "in.ome.tif", "-o",
                               tmp_path / "o.ome.tif")
    assert code == 0 and not stderr and f"of {Z} layers" in stdout


# H4: NaN or overflowing metadata


def test_a_non_finite_z_origin_is_missing_with_a_warning(data, tmp_path, capsys):
    path = tmp_path / "in.ome.tif"
    write_ome_tiff(path, data, position_z=1.0)
    edit_xml(path, lambda xml: xml.replace('PositionZ="1.0"', 'PositionZ="NaN"'))
    code, _, stderr = cli(capsys, "fuse", path, "-o", tmp_path / "o.ome.tif", "--height-map",
                          tmp_path / "h.tif", "--focus-map", tmp_path / "m.tif")
    assert code == 0, stderr
    assert "Z origin" in stderr and "NaN" in stderr
    heights = tifffile.imread(tmp_path / "h.tif")
    np.testing.assert_array_equal(heights, tifffile.imread(tmp_path / "m_indices.tif") * 0.5)


def test_a_non_finite_ome_zarr_translation_is_missing_with_a_warning(data, tmp_path, capsys):
    pytest.importorskip("zarr")
    write_ome_zarr(tmp_path / "in.ome.zarr", data, translation_z=float("nan"))
    code, _, stderr = cli(capsys, "fuse", tmp_path / "in.ome.zarr", "-o",
                          tmp_path / "o.ome.tif", "--height-map", tmp_path / "h.tif")
    assert code == 0, stderr
    assert "Z origin" in stderr
    assert np.isfinite(tifffile.imread(tmp_path / "h.tif")).all()


@pytest.mark.parametrize("attribute, value", [("PhysicalSizeZ", "1e300"),
                                              ("PositionZ", "1e308")])
def test_heights_beyond_float32_are_refused_before_any_pixel(data, tmp_path, capsys,
                                                              monkeypatch, attribute, value):
    path = tmp_path / "far.ome.tif"
    write_ome_tiff(path, data, position_z=1.0)
    edit_xml(path, lambda xml: xml.replace('PhysicalSizeZ="0.5"', f'{attribute}="{value}"')
             if attribute == "PhysicalSizeZ" else xml.replace('PositionZ="1.0"', f'{attribute}='
                                                                f'"{value}"'))

    def read(*args):
        raise AssertionError("pixels read before the heights were checked")

    monkeypatch.setattr(Source, "read", read)
    refused(capsys, tmp_path, path, "far.ome.tif", "float32")


# H5: NaN pixels in float data


def nan_pixels(data: np.ndarray, count: int = 100) -> np.ndarray:
    """A float32 copy of ``data`` with ``count`` NaN pixels in channel 0 of time point 0."""
    values = data.astype(np.float32) / np.float32(65535)
    flat = np.random.default_rng(7).choice(values[0, 0].size, count, replace=False)
    values[0, 0].reshape(-1)[flat] = np.nan
    return values


def test_nan_pixels_are_left_out_of_the_decision_and_kept_where_chosen(data, tmp_path, capsys):
    clean = data.astype(np.float32) / np.float32(65535)
    dirty = nan_pixels(data)
    write_ome_tiff(tmp_path / "clean.ome.tif", clean)
    write_ome_tiff(tmp_path / "dirty.ome.tif", dirty)
    maps = {}
    for name in ("clean", "dirty"):
        code, _, stderr = cli(capsys, "fuse", tmp_path / f"{name}.ome.tif", "-o",
                              tmp_path / f"{name}_out.ome.tif", "--focus-map",
                              tmp_path / f"{name}.tif", "--height-map", tmp_path / f"{name}_h.tif")
        assert code == 0, stderr
        maps[name] = tifffile.imread(tmp_path / f"{name}_indices.tif")
    assert "100 non-finite" in stderr and stderr.count("non-finite") == 1
    assert np.mean(maps["dirty"] == maps["clean"]) > 0.97
    assert np.isfinite(tifffile.imread(tmp_path / "dirty_h.tif")).all()
    fused = tifffile.imread(tmp_path / "dirty_out.ome.tif")
    chosen = np.take_along_axis(dirty, maps["dirty"][:, None, None].astype(np.intp), axis=2)
    np.testing.assert_array_equal(fused, chosen[:, :, 0])  # NaN where a NaN was chosen


def test_gathered_nan_pixels_leave_the_ome_zarr_window_finite(data, tmp_path):
    pytest.importorskip("zarr")
    import json

    import stackmff

    write_ome_tiff(tmp_path / "in.ome.tif", nan_pixels(data, count=W * H)[:1])
    with pytest.warns(UserWarning, match="non-finite"):
        stackmff.fuse_files(tmp_path / "in.ome.tif", tmp_path / "out.ome.zarr")
    text = (tmp_path / "out.ome.zarr" / ".zattrs").read_text()
    assert "NaN" not in text and "Infinity" not in text
    window = json.loads(text)["omero"]["channels"][0]["window"]
    assert 0 < window["end"] <= 1


# H6: OME-Zarr chunks missing from the store


def chunk_files(folder: Path) -> list[Path]:
    array = folder / "0"
    return sorted(p for p in array.rglob("*") if p.is_file()
                  and p.name not in (".zarray", ".zattrs", "zarr.json"))


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_missing_chunks_are_counted_in_a_warning(data, tmp_path, capsys, version):
    pytest.importorskip("zarr")
    write_ome_zarr(tmp_path / "in.ome.zarr", data, version=version)
    chunks = chunk_files(tmp_path / "in.ome.zarr")
    assert len(chunks) == T * 2
    chunks[0].unlink()  # t 0, c 0
    code, _, stderr = cli(capsys, "fuse", tmp_path / "in.ome.zarr", "-o", tmp_path / "o.ome.tif")
    assert code == 0, stderr
    assert "1 of 2 chunks" in stderr and "missing" in stderr


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_stack_with_every_chunk_missing_is_refused(data, tmp_path, capsys, version):
    pytest.importorskip("zarr")
    write_ome_zarr(tmp_path / "in.ome.zarr", data, version=version)
    for chunk in chunk_files(tmp_path / "in.ome.zarr"):
        chunk.unlink()
    refused(capsys, tmp_path, tmp_path / "in.ome.zarr", "in.ome.zarr", "every chunk")
