"""Halo limiting: beside a bright near object, far choices give way to nearer layers only
where the object's measured blur still reaches, and the image stays the gather of its map."""

import cv2
import numpy as np
import pytest

from stackmff import StackError, fuse_stack, gather
from stackmff.cli import main
from stackmff.io import read_pages
from stackmff.retouch import limit_halos, limit_result_halos
from stackmff.testing import texture, write_stack

N_LAYERS, BLUR = 8, 1.2  # blur sigma per layer of defocus


def halo_stack(size: int = 96):
    """A bright textured disc (sharp in layer 0) in front of a dark textured background
    (sharp in the last layer), composited layer by layer with each one's defocus blur, so
    the disc's blur spreads over the background in the far-focused layers.

    Returns ``(layers, truth, near)``.
    """
    near = np.zeros((size, size), np.float32)
    cv2.circle(near, (size // 2, size // 2), size // 5, 1.0, -1)
    disc = 0.75 + 0.2 * texture(size, size, False, seed=1)
    background = 0.05 + 0.2 * texture(size, size, False, seed=2)
    layers = []
    for k in range(N_LAYERS):
        alpha = blur(near, BLUR * k)
        layers.append(alpha * blur(disc, BLUR * k)
                      + (1 - alpha) * blur(background, BLUR * (N_LAYERS - 1 - k)))
    truth = np.where(near > 0, disc, background)
    return np.stack(layers).astype(np.float32), truth.astype(np.float32), near > 0


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return image if sigma == 0 else cv2.GaussianBlur(image, (0, 0), sigma)


def distance_from(mask: np.ndarray) -> np.ndarray:
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)


def test_halo_brings_the_background_beside_a_near_edge_closer_to_the_truth():
    layers, truth, near = halo_stack()
    result = fuse_stack(layers, "depthmap")
    limited = limit_result_halos(layers, result)
    band = (distance_from(near) >= 2) & (distance_from(near) <= 15)
    error_before = np.mean((result.fused[band] - truth[band]) ** 2)
    error_after = np.mean((limited.fused[band] - truth[band]) ** 2)
    assert error_after < 0.8 * error_before


def test_halo_changes_only_far_choices_outside_near_objects_towards_nearer_layers():
    layers, _, near = halo_stack()
    focus_map = fuse_stack(layers, "depthmap").focus_map
    limited = limit_halos(layers, focus_map)
    changed = limited != focus_map
    assert changed.any()
    assert limited.dtype == focus_map.dtype
    assert np.all(limited[changed] < focus_map[changed])
    assert not np.any(changed & (focus_map == 0))  # the near object's own pixels stay
    reach = 2 * BLUR * (N_LAYERS - 1) + 3  # where even the farthest layer's blur has faded
    assert not np.any(changed & (distance_from(focus_map == 0) > reach))


def test_halo_result_is_the_gather_of_its_map_with_no_confidence_where_overridden():
    layers, _, _ = halo_stack()
    result = fuse_stack(layers, "depthmap")
    limited = limit_result_halos(layers, result)
    np.testing.assert_array_equal(limited.fused, gather(layers, limited.focus_map))
    changed = limited.focus_map != result.focus_map
    assert np.all(limited.confidence[changed] == 0)
    np.testing.assert_array_equal(limited.confidence[~changed], result.confidence[~changed])


def test_far_to_near_order_is_the_same_rule_on_the_reversed_stack():
    layers, _, _ = halo_stack()
    focus_map = fuse_stack(layers, "depthmap").focus_map
    reversed_map = limit_halos(layers[::-1].copy(), N_LAYERS - 1 - focus_map, "far-to-near")
    np.testing.assert_array_equal(reversed_map, N_LAYERS - 1 - limit_halos(layers, focus_map))


def test_halo_needs_an_image_that_is_the_gather_of_its_map():
    layers, _, _ = halo_stack(64)
    with pytest.raises(StackError, match="gather of its map"):
        limit_result_halos(layers, fuse_stack(layers, "pyramid"))


def test_cli_halo_writes_the_limited_map(tmp_path, capsys):
    layers, _, _ = halo_stack()
    write_stack(tmp_path / "stack", layers, suffix=".png")
    out = tmp_path / "out"
    assert main(["fuse", str(tmp_path / "stack"), "-o", str(out / "plain.png"),
                 "--focus-map", str(out / "plain_map.png")]) == 0
    assert main(["fuse", str(tmp_path / "stack"), "-o", str(out / "halo.png"), "--halo",
                 "--focus-map", str(out / "halo_map.png")]) == 0
    plain = read_pages(out / "plain_map_indices.png")[0]
    limited = read_pages(out / "halo_map_indices.png")[0]
    stack = np.stack([read_pages(p)[0] for p in sorted((tmp_path / "stack").iterdir())])
    stack = stack.astype(np.float32) / 255
    np.testing.assert_array_equal(limited, limit_halos(stack, plain))
    assert np.any(limited != plain)


@pytest.mark.parametrize("args, message", [
    (["--method", "pyramid", "--halo"], "needs a method that selects layers"),
    (["--halo", "sideways"], "invalid choice"),
    (["--method", "v3", "--blend", "soft", "--halo"], "the network with --blend hard"),
])
def test_cli_refuses_halo_where_it_cannot_apply(tmp_path, capsys, args, message):
    layers, _, _ = halo_stack(48)
    write_stack(tmp_path / "stack", layers, suffix=".png")
    out = tmp_path / "out"
    try:
        code = main(["fuse", str(tmp_path / "stack"), "-o", str(out / "f.png"), *args])
    except SystemExit as stop:  # usage errors stop as argparse does
        code = stop.code
    err = capsys.readouterr().err
    assert code != 0 and message in err and len(err.strip().splitlines()) <= 2
    assert not out.exists()


def test_halo_on_a_microscopy_file_gathers_every_channel_from_the_limited_map(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    from microscopy_files import write_ome_tiff

    layers, _, _ = halo_stack()
    channel = np.rint(layers * 60000).astype(np.uint16)
    data = np.stack([channel, 65535 - channel])[None]  # T, C, Z, Y, X
    write_ome_tiff(tmp_path / "stack.ome.tif", data)
    maps = {}
    for name, extra in (("plain", []), ("halo", ["--halo"])):
        assert main(["fuse", str(tmp_path / "stack.ome.tif"), "-o",
                     str(tmp_path / f"{name}.ome.tif"), "--focus-channel", "0",
                     "--focus-map", str(tmp_path / f"{name}.tif"), *extra]) == 0
        maps[name] = tifffile.imread(tmp_path / f"{name}_indices.tif")
        fused = tifffile.imread(tmp_path / f"{name}.ome.tif")
        for c in range(2):
            np.testing.assert_array_equal(
                fused.reshape(2, *channel.shape[1:])[c],
                np.take_along_axis(data[0, c], maps[name].reshape(1, *channel.shape[1:]), 0)[0])
    assert np.any(maps["halo"] != maps["plain"])


def test_batch_halo_equals_single_runs_byte_for_byte(tmp_path):
    layers, _, _ = halo_stack(64)
    for name, stack in (("a", layers), ("b", layers[:, ::-1].copy())):
        write_stack(tmp_path / "plate" / name, stack, suffix=".png")
    assert main(["batch", str(tmp_path / "plate"), "-o", str(tmp_path / "batch"), "--halo",
                 "--workers", "1"]) == 0
    for name in ("a", "b"):
        assert main(["fuse", str(tmp_path / "plate" / name), "-o",
                     str(tmp_path / f"{name}.png"), "--halo", "-q"]) == 0
        single = (tmp_path / f"{name}.png").read_bytes()
        assert (tmp_path / "batch" / f"{name}.png").read_bytes() == single
