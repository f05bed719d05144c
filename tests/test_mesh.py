"""Surface meshes (``--mesh``) and ``--prefer near|far``: heights measured on rendered stacks of
known shape, each format reloaded with trimesh, lengths from metadata and options, and bad
input refused before anything is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

import stackmff
from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.io import read_pages
from stackmff.surface import grid_step, make_surface, parse_length
from stackmff.testing import render_depth, texture, write_stack
from tests.microscopy_files import write_ome_tiff

H, W, L = 64, 96, 8
ROWS, COLS = np.mgrid[0:H, 0:W]
INNER = (slice(4, -4), slice(4, -4))    # the focus measure's window reaches over the border
PLANE = 0.4 + (L - 1.8) * COLS / (W - 1) + 0.5 * ROWS / (H - 1)   # tilted, in layers
STEP = np.where(COLS < W // 2, 1.0, 5.0)                          # a depth edge of 4 layers


def rendered(depth: np.ndarray, colour: bool = False, seed: int = 5) -> np.ndarray:
    return render_depth(texture(H, W, colour, seed), depth, L)


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*") if p.is_file()}


# the surface ------------------------------------------------------------------------------


def test_a_tilted_plane_is_measured_below_one_layer():
    """Sub-layer refinement: the heights fit the plane within a fraction of a layer over the
    sure pixels, much better than the layer indices alone."""
    result = stackmff.fuse_stack(rendered(PLANE), "depthmap")
    assert result.depth is not None and np.abs(result.depth - result.focus_map).max() <= 1.5
    refined = make_surface(result.focus_map, L, depth=result.depth,
                           confidence=result.confidence)
    indices = make_surface(result.focus_map, L, confidence=result.confidence)
    sure = (result.confidence > 1.5 / L)[INNER]
    assert sure.mean() > 0.5

    def rms(surface):
        return float(np.sqrt(np.mean((surface.positions - PLANE)[INNER][sure] ** 2)))

    assert rms(refined) < 0.5 * 0.5            # well under half a layer step
    assert rms(refined) < 0.6 * rms(indices)   # the refinement is what brings it there


def test_a_step_stays_a_step():
    result = stackmff.fuse_stack(rendered(STEP), "depthmap")
    surface = make_surface(result.focus_map, L, depth=result.depth,
                           confidence=result.confidence)
    ramp = (surface.positions > 1.5) & (surface.positions < 4.5)
    assert ramp.sum(axis=1).max() <= 3       # no ramp wider than 3 px on any row
    assert np.abs(surface.positions[:, :W // 2 - 4] - 1).max() < 0.5
    assert np.abs(surface.positions[:, W // 2 + 4:] - 5).max() < 0.5


def test_unsure_pixels_follow_their_sure_neighbours():
    focus_map = np.full((40, 40), 3, np.uint16)
    confidence = np.full((40, 40), 0.9, np.float32)
    focus_map[18:22, 18:22] = 0          # a wrong pick, unsure
    confidence[18:22, 18:22] = 0.15
    surface = make_surface(focus_map, L, confidence=confidence)
    assert np.allclose(surface.positions, 3)
    # the same pick made with confidence is a feature, and stays
    confidence[18:22, 18:22] = 0.9
    kept = make_surface(focus_map, L, confidence=confidence)
    assert np.allclose(kept.positions[18:22, 18:22], 0)


def test_the_grid_meets_the_face_budget_and_keeps_the_corners():
    for height, width, faces in ((3000, 4000, 500_000), (64, 96, 500), (5, 7, 2), (64, 96, 10**7)):
        step = grid_step(height, width, faces)
        surface = make_surface(np.zeros((height, width), np.uint16), 4, faces=faces) \
            if height * width < 10**5 else None
        cells = (len(range(0, height - 1, step)) or 1) * (len(range(0, width - 1, step)) or 1)
        assert 2 * cells <= faces
        if surface is not None:
            assert len(surface.faces) <= faces
            assert surface.rows[-1] == height - 1 and surface.cols[-1] == width - 1
    assert grid_step(64, 96, 10**7) == 1


@pytest.mark.parametrize("text, micrometres", [("0.05mm", 50.0), ("2 um", 2.0), ("3µm", 3.0),
                                               ("500nm", 0.5), ("1e-3 m", 1000.0)])
def test_lengths_take_their_unit(text, micrometres):
    assert parse_length(text) == pytest.approx(micrometres)


@pytest.mark.parametrize("text", ["5", "0.05 parsec", "-2um", "mm", "0um"])
def test_a_length_without_a_known_unit_is_refused(text):
    with pytest.raises(StackError, match="--z-step"):
        parse_length(text)


def test_the_network_refines_its_map_below_one_layer():
    import torch

    from stackmff.fusion.blend import peak_position

    p = torch.tensor([[0.1, 0.0], [0.6, 0.2], [0.3, 0.8]]).reshape(3, 1, 2)
    best = p.argmax(0)
    position = peak_position(p, best)
    assert position[0, 0] == pytest.approx(1 + (0.3 - 0.1) / 1.0)
    assert position[0, 1] == pytest.approx(2 - 0.2 / 1.0)  # the last layer has no neighbour after


# the files --------------------------------------------------------------------------------


@pytest.fixture
def plane_stack(tmp_path):
    write_stack(tmp_path / "stack", rendered(PLANE, colour=True))
    return tmp_path / "stack"


@pytest.mark.parametrize("suffix", [".glb", ".obj", ".ply", ".stl"])
def test_each_format_reloads_within_the_budget(plane_stack, tmp_path, capsys, suffix):
    out = tmp_path / "out"
    mesh = out / f"surface{suffix}"
    code, stdout, stderr = run(capsys, "fuse", plane_stack, "-o", out / "fused.png", "--mesh",
                               mesh, "--mesh-faces", 2000, "--z-step", "0.05mm",
                               "--pixel-size", "10um")
    assert code == 0, stderr
    companions = {"surface.mtl", "surface_texture.png"} if suffix == ".obj" else set()
    assert files_in(out) == {"fused.png", mesh.name, *companions}
    loaded = trimesh.load(mesh, force="mesh", process=False)
    vertices = np.unique(loaded.vertices, axis=0)   # an STL repeats them for every face
    assert 0 < len(loaded.faces) <= 2000 and len(vertices) <= 2000
    # x, y in µm (10 µm pixels), z in µm (50 µm a layer, layer 0 the highest)
    (x0, y0, z0), (x1, y1, z1) = loaded.bounds
    assert (x0, y0, x1, y1) == pytest.approx((0, 0, (W - 1) * 10, (H - 1) * 10))
    assert z0 >= -1e-3 and z1 <= (L - 1) * 50 + 1e-3 and z1 - z0 > (L - 3) * 50
    fused = read_pages(out / "fused.png")[0]
    if suffix in (".glb", ".obj"):
        assert loaded.visual.kind == "texture"
        material = loaded.visual.material
        picture = getattr(material, "image", None) or material.baseColorTexture
        image = np.asarray(picture.convert("RGB"))
        assert image.shape == fused.shape and np.array_equal(image, fused)  # full resolution
    elif suffix == ".ply":
        assert loaded.visual.kind == "vertex"
        assert loaded.visual.vertex_colors[:, :3].std() > 10
    raw = mesh.read_bytes()
    if suffix == ".glb":
        header = json.loads(raw[20:20 + int.from_bytes(raw[12:16], "little")])
        about = header["scenes"][0]["extras"]["stackmff"]
        assert about["units"] == {"x": "um", "y": "um", "z": "um"} and about["z_step_um"] == 50
    elif suffix in (".ply", ".obj"):
        assert b'"z_step_um": 50.0' in raw[:2000] and b'"units"' in raw[:2000]
    else:
        assert raw[:80].startswith(b"stackmff") and b'"um"' in raw[:80]


def test_an_ome_tiff_surface_is_in_micrometres(tmp_path, capsys):
    """x, y from the pixel size (0.25 µm), z from the Z step (0.5 µm) and origin (10 µm)."""
    layers = rendered(PLANE)
    data = np.rint(layers * 60000).astype(np.uint16)[None, None]
    path = tmp_path / "plane.ome.tif"
    write_ome_tiff(path, data, size_z=0.5, position_z=10.0, names=["DAPI"])
    code, _, stderr = run(capsys, "fuse", path, "-o", tmp_path / "fused.ome.tif", "--mesh",
                          tmp_path / "plane.ply")
    assert code == 0, stderr
    assert "warning" not in stderr
    loaded = trimesh.load(tmp_path / "plane.ply", process=False)
    x, y, z = loaded.vertices.T
    assert x.max() == pytest.approx((W - 1) * 0.25) and y.max() == pytest.approx((H - 1) * 0.25)
    columns, rows = np.rint(x / 0.25).astype(int), (H - 1) - np.rint(y / 0.25).astype(int)
    expected = 10.0 + 0.5 * PLANE[rows, columns]
    inner = (columns >= 4) & (columns < W - 4) & (rows >= 4) & (rows < H - 4)
    assert np.sqrt(np.mean((z - expected)[inner] ** 2)) < 0.5 * 0.5


def test_without_a_z_step_the_heights_are_layers_with_a_warning(plane_stack, tmp_path, capsys):
    code, _, stderr = run(capsys, "fuse", plane_stack, "-o", tmp_path / "f.png", "--mesh",
                          tmp_path / "s.stl", "--mesh-faces", 500)
    assert code == 0 and "heights are layer indices" in stderr and "--z-step" in stderr
    bounds = trimesh.load(tmp_path / "s.stl").bounds
    assert bounds[1][2] <= L - 1 and bounds[1][0] == W - 1


def test_batch_writes_a_mesh_per_stack_and_skips_it_on_a_rerun(tmp_path, capsys):
    for name, seed in (("A1", 1), ("A2", 2)):
        write_stack(tmp_path / "plate" / name, rendered(PLANE, seed=seed))
    args = ["batch", tmp_path / "plate", "-o", tmp_path / "fused", "--mesh", "obj",
            "--mesh-faces", 1000, "--z-step", "20um", "--workers", 1]
    code, stdout, stderr = run(capsys, *args)
    assert code == 0, stdout + stderr
    assert {"A1.obj", "A1.mtl", "A1_texture.png", "A2.obj"} <= files_in(tmp_path / "fused")
    assert len(trimesh.load(tmp_path / "fused" / "A1.obj", force="mesh").faces) <= 1000
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and "0 fused, 2 skipped" in stdout
    code, stdout, _ = run(capsys, *args[:-4], "--mesh-faces", 800, "--workers", 1)
    assert code == 0 and "2 fused" in stdout   # other mesh options: made again


def test_regather_writes_the_surface_of_the_edited_map(tmp_path, capsys):
    layers = rendered(STEP)
    write_stack(tmp_path / "stack", layers)
    edited = np.where(COLS < W // 2, 1, 5).astype(np.uint16)
    edited[:, :10] = 7
    from stackmff.io import write_image

    write_image(edited, tmp_path / "edited_indices.png")
    code, _, stderr = run(capsys, "regather", tmp_path / "stack", "--focus-map",
                          tmp_path / "edited_indices.png", "-o", tmp_path / "out.png",
                          "--mesh", tmp_path / "out.glb", "--z-step", "1mm")
    assert code == 0, stderr
    loaded = trimesh.load(tmp_path / "out.glb", force="mesh")
    x, _, z = loaded.vertices.T
    # photos: layer 0 is the highest, (L - 1 - layer) x 1000 µm
    assert np.allclose(z[x < 8], 0) and np.allclose(z[(x > 12) & (x < W // 2 - 4)], 6000)


# bad input ---------------------------------------------------------------------------------


def bad_mesh_case(tmp_path: Path, stack: Path, case: str) -> list:
    out = tmp_path / "out"
    base = ["fuse", stack, "-o", out / "fused.png"]
    return {
        "unknown suffix": base + ["--mesh", out / "s.fbx"],
        "no unit": base + ["--mesh", out / "s.glb", "--z-step", "5"],
        "unknown unit": base + ["--mesh", out / "s.glb", "--z-step", "5parsec"],
        "bad pixel size": base + ["--mesh", out / "s.glb", "--pixel-size", "0um"],
        "z-step without mesh": base + ["--z-step", "5um"],
        "too few faces": base + ["--mesh", out / "s.glb", "--mesh-faces", 1],
        "mesh is the image": ["fuse", stack, "-o", out / "s.ply", "--mesh", out / "s.ply"],
        "texture is the image": ["fuse", stack, "-o", out / "s_texture.png", "--mesh",
                                 out / "s.obj"],
        "mesh is an input": base + ["--mesh", stack / "layer_0.png"],
        "prefer with a blend": base + ["--prefer", "near", "-m", "pyramid"],
    }[case]


@pytest.mark.parametrize("case", ["unknown suffix", "no unit", "unknown unit", "bad pixel size",
                                  "z-step without mesh", "too few faces", "mesh is the image",
                                  "texture is the image", "mesh is an input",
                                  "prefer with a blend"])
def test_bad_mesh_input_is_one_line_and_writes_nothing(plane_stack, tmp_path, capsys, case):
    before = files_in(plane_stack)
    code, stdout, stderr = run(capsys, *bad_mesh_case(tmp_path, plane_stack, case))
    assert code == 1, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("stackmff: error:"), stderr
    assert not (tmp_path / "out").exists() or not files_in(tmp_path / "out")
    assert files_in(plane_stack) == before


def test_a_file_of_several_stacks_makes_no_mesh(tmp_path, capsys):
    data = np.rint(np.stack([rendered(PLANE), rendered(STEP)]) * 60000).astype(np.uint16)
    path = tmp_path / "two.ome.tif"
    write_ome_tiff(path, data[:, None], names=["DAPI"])
    code, _, stderr = run(capsys, "fuse", path, "-o", tmp_path / "o.ome.tif", "--mesh",
                          tmp_path / "o.glb")
    assert code == 1 and "2 stacks" in stderr and not (tmp_path / "o.ome.tif").exists()


def test_without_trimesh_the_error_says_what_to_install(plane_stack, tmp_path, capsys,
                                                        monkeypatch):
    monkeypatch.setitem(sys.modules, "trimesh", None)  # import trimesh raises ImportError
    code, _, stderr = run(capsys, "fuse", plane_stack, "-o", tmp_path / "f.png", "--mesh",
                          tmp_path / "s.glb")
    assert code == 1 and 'pip install "stackmff[mesh]"' in stderr
    assert stderr.count("\n") == 1 and not (tmp_path / "f.png").exists()


# --prefer near|far ----------------------------------------------------------------------------


def tied_stack() -> np.ndarray:
    """Layers 2 and 5 equally sharp everywhere, the others blurred."""
    sharp = texture(H, W, True, 9)
    return np.stack([render_depth(sharp, np.full((H, W), float(d)), 1)[0]
                     for d in (3, 2, 0, 2, 3, 0, 3, 4)])


@pytest.mark.parametrize("side, layer", [("near", 2), ("far", 5)])
def test_prefer_takes_the_nearest_or_farthest_of_equally_sharp_layers(tmp_path, capsys, side,
                                                                      layer):
    layers = tied_stack()
    assert np.array_equal(layers[2], layers[5])
    write_stack(tmp_path / "stack", layers)
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "fuse", tmp_path / "stack", "-o", out / "f.png",
                          "--focus-map", out / "m.png", "--prefer", side)
    assert code == 0, stderr
    assert np.all(read_pages(out / "m_indices.png")[0] == layer)
    # the library's rule, from any map: the same layer, exactly
    from stackmff.retouch import prefer_sharp

    anywhere = np.random.default_rng(0).integers(0, L, (H, W))
    assert np.all(prefer_sharp(layers, anywhere, side) == layer)


def test_regather_prefers_too_but_keeps_what_was_edited(tmp_path, capsys):
    layers = tied_stack()
    write_stack(tmp_path / "stack", layers)
    from stackmff.io import write_image

    original = np.full((H, W), 2, np.uint16)
    edited = original.copy()
    edited[:8] = 7                              # a person chose layer 7 there
    write_image(original, tmp_path / "original_indices.png")
    write_image(edited, tmp_path / "edited_indices.png")
    write_image(np.full((H, W), 65535, np.uint16), tmp_path / "conf.png")
    code, _, stderr = run(capsys, "regather", tmp_path / "stack", "--focus-map",
                          tmp_path / "edited_indices.png", "-o", tmp_path / "r.png",
                          "--prefer", "far", "--original-map", tmp_path / "original_indices.png",
                          "--confidence", tmp_path / "conf.png", "--confidence-out",
                          tmp_path / "conf_out.png")
    assert code == 0, stderr
    result = read_pages(tmp_path / "r.png")[0]
    expected = [read_pages(tmp_path / "stack" / f"layer_{k}.png")[0] for k in range(L)]
    assert np.array_equal(result[:8], expected[7][:8])      # the edit stays
    assert np.array_equal(result[8:], expected[5][8:])      # elsewhere: the farthest sharp
    confidence = read_pages(tmp_path / "conf_out.png")[0]
    assert np.all(confidence[:8] == 0) and np.all(confidence[8:] == 0)  # both decided by rule
