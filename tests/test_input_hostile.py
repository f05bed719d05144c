"""Inputs under hostile review: malformed OME-Zarr keys and non-numeric metadata, pixel types
OME-TIFF cannot hold, declared-huge or mismatched images, our own earlier results among the
layers, and messages that said nothing. Each is refused in one line with nothing written, or
handled as promised."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from microscopy_files import NAMES, hyperstack, write_ome_tiff, write_ome_zarr

import stackmff.io.stack as stack_module
from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.io.tiff import tiff_errors
from stackmff.microscopy.axes import Metadata, resolve_channel
from stackmff.testing import make_stack, write_stack


@pytest.fixture(scope="module")
def data():
    return hyperstack()[0][:1]


def cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, out: Path, *args, fragments=()):
    code, _, stderr = cli(capsys, *args)
    lines = [line for line in stderr.strip().splitlines()
             if not line.startswith("stackmff: warning:")]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("stackmff: error:"), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists()
    return lines[0]


# M1: malformed OME-Zarr metadata, non-numeric sizes


def _dataset(attrs):
    return attrs["multiscales"][0]["datasets"][0]


def _transform(attrs, i):
    return _dataset(attrs)["coordinateTransformations"][i]


EDITS = {
    "coordinateTransformations": lambda a: _dataset(a).update(coordinateTransformations=[[1, 2]]),
    "omero": lambda a: a.update(omero=[1, 2]),
    "multiscales[0]": lambda a: a.update(multiscales=["abc"]),
    "omero.channels[0]": lambda a: a["omero"].update(channels=["DAPI", "GFP"]),
    "].scale": lambda a: _transform(a, 0).update(scale=[1.0, 1.0]),
    "].translation": lambda a: _transform(a, 1).update(translation=[0.0]),
    "scale is ['a'": lambda a: _transform(a, 0).update(scale=["a"] * 5),
    "translation is ['x'": lambda a: _transform(a, 1).update(translation=["x"] * 5),
    "axes[2].unit": lambda a: a["multiscales"][0]["axes"][2].update(unit=5),
    "color": lambda a: a["omero"]["channels"][0].update(color=[1]),
}


@pytest.mark.parametrize("key", list(EDITS))
def test_malformed_ome_zarr_metadata_is_refused_naming_the_key(data, tmp_path, capsys, key):
    import zarr

    path = tmp_path / "bad.ome.zarr"
    write_ome_zarr(path, data)
    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs)
    EDITS[key](attrs)
    group.attrs.put(attrs)
    refused(capsys, tmp_path / "out", "fuse", path, "-o", tmp_path / "out" / "f.ome.tif",
            fragments=("bad.ome.zarr", "malformed", key))


@pytest.mark.parametrize("attribute", ["PhysicalSizeZ", "PhysicalSizeX"])
def test_a_non_numeric_physical_size_names_the_file_and_the_key(data, tmp_path, capsys,
                                                                 attribute):
    path = tmp_path / "odd.ome.tif"
    write_ome_tiff(path, data)
    with tifffile.TiffFile(path) as tif:
        xml = tif.pages[0].description
    value = "0.5" if attribute == "PhysicalSizeZ" else "0.25"
    tifffile.tiffcomment(path, xml.replace(f'{attribute}="{value}"', f'{attribute}="abc"')
                         .encode())
    refused(capsys, tmp_path / "out", "fuse", path, "-o", tmp_path / "out" / "f.ome.tif",
            fragments=("odd.ome.tif", attribute, "'abc'", "not a number"))


# M2: pixel types the OME-TIFF writer cannot hold


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_a_type_ome_tiff_cannot_hold_is_refused_before_reading(data, tmp_path, capsys,
                                                               monkeypatch, dtype):
    from stackmff.microscopy import ome_zarr

    path = tmp_path / "wide.ome.zarr"
    write_ome_zarr(path, data[:, :1].astype(dtype), names=["A"])
    monkeypatch.setattr(ome_zarr, "_read_planes", lambda *a: pytest.fail("pixels read"))
    refused(capsys, tmp_path / "out", "fuse", path, "-o", tmp_path / "out" / "f.ome.tif",
            fragments=(dtype, "OME-TIFF", "uint32", ".ome.zarr"))


def test_float16_is_written_to_ome_tiff_as_float32(data, tmp_path, capsys):
    path = tmp_path / "half.ome.zarr"
    write_ome_zarr(path, (data[:, :1] / 65535).astype(np.float16), names=["A"])
    code, _, stderr = cli(capsys, "fuse", path, "-o", tmp_path / "f.ome.tif")
    assert code == 0, stderr
    fused = tifffile.imread(tmp_path / "f.ome.tif")
    assert fused.dtype == np.float32
    assert np.array_equal(fused, fused.astype(np.float16).astype(np.float32))


# M11: declared sizes and the method's memory, before any decoding


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def no_decoding(monkeypatch):
    monkeypatch.setattr(stack_module, "read_image", lambda path: pytest.fail(f"decoded {path}"))


def test_one_declared_huge_layer_is_refused_before_decoding(tmp_path, capsys, monkeypatch):
    layers, _, _ = make_stack(n_layers=3, height=24, width=32)
    write_stack(tmp_path / "s", layers)
    (tmp_path / "s" / "layer_9.png").write_bytes(png_declaring(20000, 20000))
    no_decoding(monkeypatch)
    refused(capsys, tmp_path / "f.png", "fuse", tmp_path / "s", "-o", tmp_path / "f.png",
            fragments=("differ in size", "20000x20000: layer_9.png", "32x24"))


def test_a_transposed_declared_size_is_left_to_the_orientation(tmp_path):
    stack_module._check_declared_sizes([Path("a"), Path("b")], [
        stack_module.ImageInfo(1, 20, 30, 1, 1), stack_module.ImageInfo(1, 30, 20, 1, 1)])


def test_the_method_memory_is_counted_before_decoding(tmp_path, capsys, monkeypatch):
    for k in range(3):  # grey 8-bit: 1.2 GB as loaded, 4.8 GB more as pyramid's float32
        (tmp_path / f"{k}.png").write_bytes(png_declaring(20000, 20000))
    monkeypatch.setattr(stack_module, "available_memory", lambda: 4 * 10**9)
    no_decoding(monkeypatch)
    refused(capsys, tmp_path / "f.png", "fuse", tmp_path, "-o", tmp_path / "f.png", "-m",
            "pyramid", fragments=("needs about", "only 4.0 GB"))


# M12: an earlier result among the layers


def test_an_earlier_result_in_the_folder_is_skipped_with_a_warning(tmp_path, capsys):
    layers, _, _ = make_stack(n_layers=3, height=24, width=32)
    write_stack(tmp_path / "shots", layers)
    out = tmp_path / "shots" / "fused.png"
    assert cli(capsys, "fuse", tmp_path / "shots", "-o", out, "--focus-map",
               tmp_path / "shots" / "map.png")[0] == 0
    first = out.read_bytes()
    code, stdout, stderr = cli(capsys, "fuse", tmp_path / "shots", "-o", out)
    assert code == 0 and "fused 3 layers" in stdout, stdout + stderr
    assert "fused.png" in stderr and "map.png" in stderr and "map_indices.png" in stderr
    assert out.read_bytes() == first


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_products_carry_the_marker_and_keep_their_pixels(tmp_path, capsys, suffix):
    from stackmff.io.image import encode_image, is_own_output, read_pages

    image = (np.arange(24 * 32 * 3) % 251).astype(np.uint8).reshape(24, 32, 3)
    plain, marked = tmp_path / f"plain{suffix}", tmp_path / f"marked{suffix}"
    plain.write_bytes(encode_image(image, plain))
    marked.write_bytes(encode_image(image, marked, "stackmff 0.1.0"))
    assert not is_own_output(plain) and is_own_output(marked)
    assert np.array_equal(read_pages(plain)[0], read_pages(marked)[0])


def test_product_names_are_skipped_and_a_named_file_is_kept(tmp_path, recwarn):
    from stackmff.outputs import skip_own_outputs

    paths = [tmp_path / n for n in ("a.png", "a_confidence.png", "x_height_map.tif")]
    for p in paths:
        p.write_bytes(b"")
    assert skip_own_outputs(paths, [tmp_path]) == paths[:1]
    assert skip_own_outputs(paths, [paths[1]]) == paths[:2]


# L3: messages that did not help


def test_an_empty_tifffile_message_still_says_something(tmp_path):
    with pytest.raises(StackError) as caught, tiff_errors(tmp_path / "x.tif"):
        raise ValueError("")
    assert str(caught.value).endswith("damaged file (ValueError without a message)")
    with pytest.raises(StackError, match="a page is missing or damaged"), \
            tiff_errors(tmp_path / "x.tif"):
        None.asarray()


def test_a_channel_name_two_channels_share_is_refused():
    metadata = Metadata(channel_names=("DAPI", "GFP", "DAPI"))
    with pytest.raises(StackError, match=r"'DAPI' is ambiguous.*indices 0, 2"):
        resolve_channel("DAPI", metadata, 3, "x.ome.tif")
    assert resolve_channel("GFP", metadata, 3, "x.ome.tif") == 1
    assert NAMES  # the files of microscopy_files keep distinct names


def _stacks(tmp_path: Path, count: int = 2) -> list[Path]:
    folders = []
    for k in range(count):
        layers, _, _ = make_stack(n_layers=2, height=16, width=16, seed=k)
        write_stack(tmp_path / f"s{k}", layers)
        folders.append(tmp_path / f"s{k}")
    return folders


@pytest.mark.parametrize("suffix,text", [
    (".txt", "\ufeffs0\ns1\n"),
    (".csv", "path,notes\ns0,first\ns1,second\n"),
    (".csv", "\ufeffpath\ns0\ns1\n"),
])
def test_stack_lists_with_a_bom_or_a_header(tmp_path, suffix, text):
    from stackmff.batch.stacks import find_stacks

    _stacks(tmp_path)
    listing = tmp_path / f"list{suffix}"
    listing.write_text(text, encoding="utf-8")
    assert [Path(t.inputs[0]).name for t in find_stacks([listing])] == ["s0", "s1"]
