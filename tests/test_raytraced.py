"""The ray-traced renderer: labels from the depth pass agree with the geometry and with the
optics POV-Ray rendered, and the render cache is deterministic and resumable. Tiny frames
(POV-Ray 3.7, installed by `make test` through scripts/setup_training.sh)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from stackmff.data.export import read_synthetic_stack, write_synthetic_stacks
from stackmff.data.physical import PhysicalOptions
from stackmff.data.pov_scene import PovScene, Solid, draw_scene
from stackmff.data.raytraced import (
    POVRAY_BLUR,
    RENDERER_VERSION,
    focus_planes,
    label_from_depth,
    render_raytraced,
)
from stackmff.errors import StackError
from stackmff.io.colour import linear_from_perceptual

CLEAN = PhysicalOptions(noise=0.0, jpeg=0.0)


def two_cards() -> PovScene:
    """A textured card on the left half at the nearest focus plane and a textured wall at
    the farthest: two depths known exactly."""
    scene = PovScene(width=64, height=48, fov=40.0, near=2.0, far=8.0, families=["test"],
                     solids=[], lights=[((0.0, 5.0, -5.0), 1.0)])
    checker = ("texture { pigment { checker rgb 0.1 rgb 0.9 scale %.4f } "
               "finish { ambient 0.3 diffuse 0.7 } }")
    half = 8.0 * np.tan(np.radians(20))
    scene.solids.append(Solid("box { <-1, -1, 0>, <1, 1, 0.01> }", checker % 0.15,
                              f"scale <{half * 1.3:.4f}, {half:.4f}, 1> translate <0, 0, 8>"))
    near_half = 2.0 * np.tan(np.radians(20))
    scene.solids.append(Solid("box { <-1, -1, 0>, <0, 1, 0.001> }", checker % 0.04,
                              f"scale <{near_half * 1.2:.4f}, {near_half:.4f}, 1> "
                              "translate <0, 0, 2>"))
    return scene


def test_the_label_follows_the_depth_pass_and_the_sharpest_layer():
    scene = two_cards()
    stack = render_raytraced(scene, 3, np.random.default_rng(0), CLEAN, samples=(16, 64))
    assert stack.layers.shape == (3, 48, 64, 3) and stack.truth.shape == (48, 64, 3)
    np.testing.assert_allclose(stack.focus, focus_planes(2.0, 8.0, 3))
    left, right = (slice(6, 42), slice(4, 26)), (slice(6, 42), slice(40, 60))
    # the depth pass measures the geometry: the near card at 2, the wall at 8
    np.testing.assert_allclose(stack.depth[left], 2.0, atol=0.01)
    np.testing.assert_allclose(stack.depth[right], 8.0, atol=0.02)
    np.testing.assert_array_equal(stack.label, label_from_depth(stack.depth, stack.focus))
    assert (stack.label[left] == 2).all() and (stack.label[right] == 0).all()
    # and the optics agree: the labelled layer is the sharpest one there
    grey = stack.layers.mean(axis=-1)
    energy = np.stack([ndimage.uniform_filter(ndimage.laplace(g) ** 2, 9) for g in grey])
    assert (energy.argmax(axis=0)[left] == 2).mean() > 0.95
    assert (energy.argmax(axis=0)[right] == 0).mean() > 0.95
    # the pinhole truth is sharp on both: as sharp as the best focused layer, or sharper
    truth_energy = ndimage.uniform_filter(ndimage.laplace(stack.truth.mean(axis=-1)) ** 2, 9)
    for region in (left, right):
        assert truth_energy[region].mean() > 0.8 * energy.max(axis=0)[region].mean()


def test_random_scenes_keep_the_validation_families_out_of_training():
    photos = [np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)]
    train = [draw_scene(np.random.default_rng(i), 64, 64, photos).families for i in range(40)]
    held = [draw_scene(np.random.default_rng(i), 64, 64, photos, validation=True).families
            for i in range(40)]
    assert not {f for fs in train for f in fs} & {"fence", "leaves"}
    assert all({"fence", "leaves"} & set(fs) for fs in held)


def test_the_cache_is_rebuilt_byte_for_byte_and_a_rerun_keeps_what_is_there(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    done = write_synthetic_stacks(first, 1, (2, 3), 32, "raytraced", seed=7)
    assert done.stacks == 1 and done.frames == sum(
        json.loads((f / "stack.json").read_text())["layers"] + 2 for f in done.folders)
    write_synthetic_stacks(second, 1, (2, 3), 32, "raytraced", seed=7)
    for a, b in zip(sorted(first.rglob("*.*")), sorted(second.rglob("*.*")), strict=True):
        assert a.name == b.name and a.read_bytes() == b.read_bytes()
    stack = read_synthetic_stack(first / "stack_000")
    assert stack["layers"].dtype == np.uint16 and stack["depth"].dtype == np.float32
    np.testing.assert_array_equal(
        stack["focus_map"], label_from_depth(stack["depth"], np.array(stack["info"]["focus"])))
    again = write_synthetic_stacks(first, 2, (2, 3), 32, "raytraced", seed=7)
    assert again.stacks == 1 and len(again.folders) == 2


def test_the_blur_on_an_edge_is_the_blur_aimed_at():
    """POV-Ray's focal blur is narrower than thin-lens geometry; the aperture is widened by
    the measured factor, so a bright edge's 2-98% width is the target diameter."""
    scene = PovScene(width=96, height=32, fov=40.0, near=2.0, far=8.0, families=[], solids=[],
                     lights=[])
    scene.solids.append(Solid("box { <-10, -10, 0>, <0, 10, 0.01> }",
                              "texture { pigment { rgb 1 } finish { emission 1 diffuse 0 } }",
                              "translate <0, 0, 8>"))
    stack = render_raytraced(scene, 3, np.random.default_rng(3), CLEAN, samples=(64, 256))
    k = stack.aperture * scene.width / (2 * np.tan(np.radians(scene.fov) / 2))
    for layer, focus in list(enumerate(stack.focus))[1:]:
        light = linear_from_perceptual(stack.layers[layer].mean(axis=-1)[8:24].mean(axis=0))
        profile = (light - light.min()) / np.ptp(light)
        width = np.count_nonzero((profile > 0.02) & (profile < 0.98))
        target = POVRAY_BLUR * k * abs(1 / 8 - 1 / focus)
        assert 0.75 * target <= width <= 1.25 * target + 1, (focus, width, target)


def test_a_cache_of_another_renderer_version_is_refused_and_kept(tmp_path):
    done = write_synthetic_stacks(tmp_path, 1, 2, 32, "raytraced", seed=7)
    info_file = done.folders[0] / "stack.json"
    info = json.loads(info_file.read_text())
    assert info["version"] == RENDERER_VERSION
    del info["version"]  # as the renderer before the aperture's calibration wrote it
    info_file.write_text(json.dumps(info))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.*")}
    with pytest.raises(StackError, match="renderer version 1"):
        write_synthetic_stacks(tmp_path, 2, 2, 32, "raytraced", seed=7)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.*")} == before
