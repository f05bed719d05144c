"""stackmff batch on microscopy files: one stack per OME-TIFF, OME-Zarr or ImageJ hyperstack,
each fused exactly as ``stackmff fuse`` fuses it; failures recorded per file; resumable."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from microscopy_files import NAMES, C, H, T, W, Z, hyperstack, write_ome_tiff, write_ome_zarr

from stackmff.batch import find_stacks
from stackmff.cli import main
from stackmff.testing import make_stack, write_stack

UUID = re.compile(rb"urn:uuid:[0-9a-f-]{36}")
MAPS = ("_focus_map.tif", "_focus_map_indices.tif", "_confidence.tif", "_height_map.tif")


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def same_tiff(a: Path, b: Path) -> bool:
    """Byte for byte, but for the UUID that tifffile gives every OME-TIFF it writes."""
    def normal(path: Path) -> bytes:
        return UUID.sub(b"urn:uuid:" + b"0" * 36, path.read_bytes())

    return normal(a) == normal(b)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def report(outdir: Path) -> list[dict]:
    return [json.loads(line) for line in (outdir / "batch.jsonl").read_text().splitlines()]


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def data():
    return hyperstack()


@pytest.fixture
def plate(tmp_path, data) -> Path:
    """Two OME-TIFFs (one a level down, with one time point) and an OME-Zarr whose channels
    come in the other order: GFP is channel 1 in the TIFFs and channel 0 in the Zarr."""
    pytest.importorskip("zarr")
    source, _, _ = data
    root = tmp_path / "plate"
    (root / "B2").mkdir(parents=True)
    write_ome_tiff(root / "A1.ome.tif", source)
    write_ome_tiff(root / "B2" / "t0.ome.tif", source[:1])
    write_ome_zarr(root / "C3.ome.zarr", np.ascontiguousarray(source[:, ::-1]), names=NAMES[::-1])
    return root


def test_each_microscopy_file_is_one_stack_named_after_the_tree(plate, data):
    source, _, _ = data
    tifffile.imwrite(plate / "ij.tif", source.transpose(0, 2, 1, 3, 4), imagej=True,
                     metadata={"axes": "TZCYX"})
    tifffile.imwrite(plate / "B2" / "plain.tif", source[0, 0], photometric="minisblack")
    layers, _, _ = make_stack(n_layers=3, height=32, width=32, seed=1)
    write_stack(plate / "D4", layers)
    (plate / "E5").mkdir()
    for k, plane in enumerate(source[0, 0, :2]):  # one plane per OME-TIFF: layers of a folder
        write_ome_tiff(plate / "E5" / f"z{k}.ome.tif", plane[None], axes="CYX",
                       names=None)
    found = {task.name: (task.kind, task.inputs) for task in find_stacks([plate])}
    assert {name: kind for name, (kind, _) in found.items()} == {
        "A1": "microscopy", "B2/t0": "microscopy", "C3": "microscopy", "ij": "microscopy",
        "B2/plain": "tiff", "D4": "images", "E5": "images"}
    assert found["C3"][1] == (str(plate / "C3.ome.zarr"),)  # not searched for images
    assert [t.name for t in find_stacks([f"{plate}/*.ome.*"])] == ["A1", "C3"]
    assert [(t.name, t.kind) for t in find_stacks([plate / "C3.ome.zarr"])] == [
        ("C3", "microscopy")]


def test_batch_equals_single_fuse_runs_and_the_channel_name_decides_in_every_file(
        plate, data, tmp_path, capsys):
    _, maps0, maps1 = data
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "batch", plate, "-o", out, "--workers", "2",
                               "--focus-channel", "GFP", "--height-map", "--focus-map",
                               "--confidence")
    assert code == 0, stdout + stderr
    assert "3 fused, 0 skipped (outputs present), 0 failed" in stdout
    for task in find_stacks([plate]):
        single = tmp_path / "single" / task.name
        code, _, stderr = run(capsys, "fuse", task.inputs[0], "-o", f"{single}.ome.tif",
                              "--focus-channel", "GFP", "--height-map",
                              f"{single}_height_map.tif", "--focus-map",
                              f"{single}_focus_map.tif", "--confidence",
                              f"{single}_confidence.tif")
        assert code == 0, stderr
        for suffix in (".ome.tif",) + MAPS:
            produced = Path(f"{out / task.name}{suffix}")
            assert same_tiff(produced, Path(f"{single}{suffix}")), produced
        focus_map = tifffile.imread(f"{out / task.name}_focus_map_indices.tif")
        times = len(focus_map) if focus_map.ndim == 3 else 1
        assert np.mean(focus_map == maps1[:times].squeeze()) > 0.85, task.name  # GFP's bands
        assert np.mean(focus_map == maps0[:times].squeeze()) < 0.4, task.name
    with tifffile.TiffFile(out / "C3.ome.tif") as tif:
        assert tif.series[0].axes == "TCYX" and tif.series[0].dtype == np.uint16
    lines = {line["name"]: line for line in report(out)}
    assert {name: (line["size_t"], line["size_c"], line["size_z"], line["kind"])
            for name, line in lines.items()} == {
        "A1": (T, C, Z, "microscopy"), "B2/t0": (1, C, Z, "microscopy"),
        "C3": (T, C, Z, "microscopy")}
    assert all((line["width"], line["height"], line["layers"]) == (W, H, Z)
               for line in lines.values())


def test_dask_writes_ome_zarr_as_fuse_does_and_a_rerun_skips_it(plate, tmp_path, capsys):
    out = tmp_path / "out"
    args = ("batch", plate, "-o", out, "--dask", "local", "--workers", "1", "--format",
            "ome.zarr", "--height-map")
    code, stdout, stderr = run(capsys, *args)
    assert code == 0, stdout + stderr
    for task in find_stacks([plate]):
        single = tmp_path / "single" / f"{task.name}.ome.zarr"
        assert run(capsys, "fuse", task.inputs[0], "-o", single, "--height-map",
                   tmp_path / "single" / f"{task.name}_height_map.tif")[0] == 0
        produced = out / f"{task.name}.ome.zarr"
        assert produced.is_dir() and tree(produced) == tree(single), task.name
        assert same_tiff(out / f"{task.name}_height_map.tif",
                         tmp_path / "single" / f"{task.name}_height_map.tif")
    before = {name: (out / name).stat().st_mtime_ns for name in files_in(out)
              if name != "batch.jsonl"}
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and "0 fused, 3 skipped (outputs present), 0 failed" in stdout
    assert {name: (out / name).stat().st_mtime_ns for name in before} == before
    assert [line["status"] for line in report(out)[3:]] == ["skipped"] * 3


def test_a_bad_file_fails_alone_with_its_line_and_a_rerun_retries_only_it(plate, data,
                                                                          tmp_path, capsys):
    source, _, _ = data
    (plate / "corrupt.ome.tif").write_bytes(b"II*\0" + bytes(60))
    write_ome_tiff(plate / "flat.ome.tif", source[:, :, 0], axes="TCYX")
    write_ome_tiff(plate / "B2" / "rfp.ome.tif", source, names=["DAPI", "RFP"])
    out = tmp_path / "out"
    args = ("batch", plate, "-o", out, "--workers", "1", "--focus-channel", "GFP",
            "--height-map")
    code, stdout, _ = run(capsys, *args)
    assert code == 1
    assert "3 fused, 0 skipped (outputs present), 3 failed" in stdout
    errors = {line["name"]: line["error"] for line in report(out) if line["status"] == "failed"}
    assert set(errors) == {"corrupt", "flat", "B2/rfp"}
    assert "corrupt.ome.tif" in errors["corrupt"]
    assert "no Z axis" in errors["flat"] and "TCYX" in errors["flat"]
    assert "no channel named 'GFP'" in errors["B2/rfp"] and "0: DAPI, 1: RFP" in errors["B2/rfp"]
    assert all("\n" not in error for error in errors.values())
    assert files_in(out) == {"batch.jsonl"} | {
        f"{name}{suffix}" for name in ("A1", "B2/t0", "C3")
        for suffix in (".ome.tif", "_height_map.tif")}
    before = {name: (out / name).stat().st_mtime_ns for name in files_in(out)
              if name != "batch.jsonl"}
    code, stdout, _ = run(capsys, *args)
    assert code == 1 and "0 fused, 3 skipped (outputs present), 3 failed" in stdout
    assert {name: (out / name).stat().st_mtime_ns for name in before} == before


def test_a_plain_multipage_tiff_is_fused_as_fuse_fuses_it(data, tmp_path, capsys):
    """Its pages are the layers; with a microscopy option, the Z planes of one channel."""
    source, _, _ = data
    tifffile.imwrite(tmp_path / "z.tif", source[0, 0], photometric="minisblack")
    out, single = tmp_path / "out", tmp_path / "single"
    assert run(capsys, "batch", tmp_path / "z.tif", "-o", out, "--workers", "1")[0] == 0
    assert run(capsys, "fuse", tmp_path / "z.tif", "-o", single / "z.png")[0] == 0
    assert (out / "z.png").read_bytes() == (single / "z.png").read_bytes()
    code, stdout, stderr = run(capsys, "batch", tmp_path / "z.tif", "-o", out, "--height-map")
    assert code == 0 and stderr == ""  # the worker's warning is the report's, said once
    assert stdout.count("warning: z: ") == 1 and "no Z step" in stdout
    assert "no Z step" in report(out)[-1]["warnings"][0]
    assert run(capsys, "fuse", tmp_path / "z.tif", "-o", single / "z.ome.tif",
               "--height-map", single / "z_height_map.tif")[0] == 0
    for suffix in (".ome.tif", "_height_map.tif"):
        assert same_tiff(out / f"z{suffix}", single / f"z{suffix}")


@pytest.mark.parametrize("case, message", [
    ("height map for images", "--height-map apply to microscopy files, and"),
    ("align", "--align does not apply to microscopy files"),
    ("output over the input", "is the input folder"),
    ("two image formats", "at most one format for images"),
    ("zarr missing", "pip install 'stackmff[microscopy]'"),
])
def test_options_that_do_not_fit_are_refused_before_any_work(plate, tmp_path, capsys,
                                                             monkeypatch, case, message):
    inputs, out, extra = [plate], tmp_path / "out", []
    if case == "height map for images":
        layers, _, _ = make_stack(n_layers=3, height=32, width=32, seed=2)
        write_stack(tmp_path / "photos", layers)
        inputs.append(tmp_path / "photos")
        extra = ["--height-map"]
    elif case == "align":
        extra = ["--align"]
    elif case == "output over the input":
        out = plate
    elif case == "two image formats":
        extra = ["--format", "png", "--format", "tif"]
    else:
        monkeypatch.setitem(__import__("sys").modules, "zarr", None)  # as if not installed
        extra = ["--format", "ome.zarr"]
    before = files_in(tmp_path)
    code, _, stderr = run(capsys, "batch", *inputs, "-o", out, *extra)
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("stackmff: error:"), stderr
    assert message in lines[0], lines[0]
    assert files_in(tmp_path) == before
