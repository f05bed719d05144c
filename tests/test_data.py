import numpy as np
import pytest

from stackmff.data import PhysicalOptions, Scene, dead_leaves, render_faithful, render_physical
from stackmff.data.faithful import quantise_depth
from stackmff.data.scenes import procedural_depth
from stackmff.io.colour import linear_from_perceptual
from stackmff.metrics import psnr
from stackmff.stack_ops import gather
from stackmff.testing import texture


def step_scene(size: int = 96) -> Scene:
    """Left half near, right half far, with a texture everywhere."""
    depth = np.ones((size, size), np.float32)
    depth[:, size // 2:] = 5.0
    return Scene(texture(size, size, colour=True, seed=4), depth)


def test_faithful_synthesis_follows_algorithm_1():
    scene = step_scene()
    rng = np.random.default_rng(0)
    stack, focus_map = render_faithful(scene, 4, rng)
    assert stack.shape == (4, 96, 96, 3) and focus_map.shape == (96, 96)
    bins = quantise_depth(scene.depth, 4)
    assert set(np.unique(bins)) == {0, 3}
    # the labelled layer is the sharp image itself (hard masks)
    np.testing.assert_array_equal(gather(stack, focus_map), scene.image)
    # shuffled: the layer sharp on the left is not always layer 0
    orders = {int(render_faithful(scene, 4, np.random.default_rng(s))[1][0, 0]) for s in range(8)}
    assert len(orders) > 1


@pytest.mark.parametrize("n_layers", [2, 5, 16])
def test_physical_labels_point_at_the_sharpest_layer(n_layers):
    scene = step_scene()
    stack, focus_map = render_physical(scene, n_layers, np.random.default_rng(1),
                                       PhysicalOptions(noise=0.0))
    assert stack.shape[0] == n_layers and focus_map.max() < n_layers
    fused = gather(stack, focus_map)
    best_single = max(psnr(layer, scene.image) for layer in stack)
    assert psnr(fused, scene.image) > best_single + 3.0
    # defocus does not vanish: the neighbours of the labelled layer are visibly worse
    for k in range(n_layers):
        assert psnr(stack[k], scene.image) < 40.0


def test_physical_blur_spreads_over_depth_edges():
    """A blurred near object veils the in-focus far side next to the edge (occlusion)."""
    scene = step_scene()
    stack, _ = render_physical(scene, 2, np.random.default_rng(2),
                               PhysicalOptions(noise=0.0, label="depth"), shuffle=False)
    far_in_focus = stack[0]
    error = np.abs(far_in_focus - scene.image).mean(axis=(0, 2))
    assert error[48:52].mean() > 3 * error[80:].mean()


def test_interference_layers_are_never_the_label():
    options = PhysicalOptions(noise=0.0)
    stack, focus_map = render_physical(step_scene(), 4, np.random.default_rng(3), options,
                                       shuffle=False, interference=3)
    assert stack.shape[0] == 7 and focus_map.max() < 4
    detail = [float(np.abs(np.diff(layer, axis=1)).mean()) for layer in stack]
    assert max(detail[4:]) < 0.5 * min(detail[:4])  # the added layers are the blurriest
    shuffled, shuffled_map = render_physical(step_scene(), 4, np.random.default_rng(3), options,
                                             interference=3)
    np.testing.assert_array_equal(gather(shuffled, shuffled_map), gather(stack, focus_map))


def test_scene_sources_are_deterministic_and_valid():
    a = dead_leaves(64, np.random.default_rng(5))
    b = dead_leaves(64, np.random.default_rng(5))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.shape == (64, 64, 3) and a.depth.min() > 0
    depth = procedural_depth(a.image, np.random.default_rng(6))
    assert depth.shape == (64, 64) and depth.min() > 0 and np.ptp(depth) > 0


def test_synth_command_writes_stacks_with_ground_truth(tmp_path, capsys):
    from stackmff.cli import main
    from stackmff.io import load_stack, read_pages

    assert main(["synth", "-o", str(tmp_path), "--count", "1", "--layers", "3",
                 "--size", "64", "--renderer", "faithful"]) == 0
    folder = tmp_path / "stack_000"
    stack = load_stack(str(folder / "layer_*.png"))
    truth = read_pages(folder / "all_in_focus.png")[0]
    focus_map = read_pages(folder / "focus_map.png")[0]
    assert len(stack) == 3 and stack.dtype == np.uint16 and focus_map.max() < 3
    np.testing.assert_array_equal(stack.to_output(gather(stack.layers, focus_map)), truth)


def bright_disc_scene(size: int = 96, radius: int = 14) -> Scene:
    """A flat bright disc near the camera before a dim textured background far away."""
    image = texture(size, size, colour=True, seed=7) * 0.3
    yy, xx = np.mgrid[0:size, 0:size]
    disc = (yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= radius**2
    image[disc] = 0.9
    depth = np.where(disc, 1.0, 5.0).astype(np.float32)
    return Scene(image.astype(np.float32), depth)


@pytest.mark.parametrize("seed", range(4))
def test_an_overexposed_highlight_spreads_when_defocused(seed):
    """In linear light above the clipping level, a defocused bright disc grows (a lens
    spreads its light before the sensor clips it); blurred as clipped values, it does not."""
    scene = bright_disc_scene()
    disc = scene.depth == 1.0
    area = {}
    for highlights in (0.0, 1.0):
        options = PhysicalOptions(noise=0.0, label="depth", highlights=highlights)
        stack, focus_map, truth = render_physical(scene, 2, np.random.default_rng(seed),
                                                  options, shuffle=False, return_truth=True)
        far_in_focus = stack[0].mean(axis=-1)
        area[highlights] = int((far_in_focus >= 0.8).sum())
        assert np.array_equal(focus_map == 1, disc)
    assert area[1.0] > disc.sum() >= area[0.0]
    np.testing.assert_allclose(truth[disc], 1.0, atol=1e-6)  # in focus: clipped flat
    np.testing.assert_array_equal(gather(stack, focus_map)[disc], truth[disc])


@pytest.mark.parametrize("seed", range(3))
def test_where_layers_tie_the_label_is_the_layer_at_its_depth(seed):
    """Inside a clipped highlight every layer equals the truth; the label there is the layer
    focused on the highlight, not the first of equal layers (the one focused farthest)."""
    scene = bright_disc_scene(radius=20)
    yy, xx = np.mgrid[0:96, 0:96]
    core = (yy - 48) ** 2 + (xx - 48) ** 2 <= 8**2
    options = PhysicalOptions(noise=0.0, highlights=1.0)
    stack, focus_map, truth = render_physical(scene, 3, np.random.default_rng(seed), options,
                                              shuffle=False, return_truth=True)
    assert np.all(stack[:, core] == truth[core])  # every layer clipped flat there: a tie
    assert np.all(focus_map[core] == 2)
    np.testing.assert_array_equal(gather(stack, focus_map)[core], truth[core])



def dark_disc_scene(size: int = 96, radius: int = 14) -> Scene:
    """A dark textured disc near the camera before a bright, nearly flat backdrop far away."""
    image = 0.8 + 0.2 * texture(size, size, colour=True, seed=8)
    yy, xx = np.mgrid[0:size, 0:size]
    disc = (yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= radius**2
    image[disc] = 0.3 * texture(size, size, colour=True, seed=9)[disc]
    depth = np.where(disc, 1.0, 5.0).astype(np.float32)
    return Scene(image.astype(np.float32), depth)


def glowing_scene(size: int = 96) -> tuple[Scene, np.ndarray]:
    """A bright textured disc near the camera and a bright ring far behind it, on black."""
    yy, xx = np.mgrid[0:size, 0:size]
    r2 = (yy - size // 2) ** 2 + (xx - size // 2) ** 2
    disc, ring = r2 <= 10**2, (r2 >= 22**2) & (r2 <= 28**2)
    image = np.zeros((size, size, 3), np.float32)
    image[disc | ring] = texture(size, size, colour=True, seed=3)[disc | ring]
    return Scene(image, np.where(disc, 1.0, 5.0).astype(np.float32)), disc


@pytest.mark.parametrize("seed", range(4))
def test_emitted_light_adds_over_depths_and_never_clips(seed):
    """An emission stack conserves every layer's light (the depths add, none occludes: the
    ring's haze reaches into the sharp disc), nothing clips, and the disc is labelled with
    the layer focused on it."""
    scene, disc = glowing_scene()
    options = PhysicalOptions(noise=0.0, emission=1.0)
    stack, focus_map, truth = render_physical(scene, 2, np.random.default_rng(seed), options,
                                              shuffle=False, return_truth=True)
    assert truth.max() < 0.99 and stack.max() < 0.99
    total = linear_from_perceptual(truth).sum()
    for layer in stack:
        assert abs(linear_from_perceptual(layer).sum() - total) < 0.002 * total
    assert np.mean(focus_map[disc] == 1) > 0.9


@pytest.mark.parametrize("seed", range(4))
def test_a_plateau_is_flat_below_clipping_and_dented_by_defocused_detail(seed):
    """A plateau stack's backdrop is one flat grey below 1; the dark disc, out of focus,
    spreads over it (an over-exposed highlight would spread over the disc instead), while
    the backdrop out of focus stays flat beside the sharp disc."""
    scene = dark_disc_scene()
    disc = scene.depth == 1.0
    options = PhysicalOptions(noise=0.0, plateaus=1.0)
    stack, focus_map, truth = render_physical(scene, 2, np.random.default_rng(seed), options,
                                              shuffle=False, return_truth=True)
    level = truth[~disc].max()
    assert level < 0.98 and np.mean(np.all(truth[~disc] >= level - 1e-4, axis=-1)) > 0.15
    yy, xx = np.mgrid[0:96, 0:96]
    rim = ~disc & ((yy - 48) ** 2 + (xx - 48) ** 2 <= 17**2) & np.all(truth >= level - 1e-4, -1)
    far_in_focus, near_in_focus = stack[0].max(axis=-1), stack[1].max(axis=-1)
    assert far_in_focus[rim].mean() < level - 0.05
    np.testing.assert_allclose(near_in_focus[rim], level, atol=0.02)
    assert np.mean(focus_map[disc] == 1) > 0.9
