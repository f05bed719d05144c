"""The napari plugin, driven in a real viewer (headless: ``make test`` runs pytest under
``xvfb-run``, after scripts/setup_gui.sh installed the X server and OpenGL it needs).

A missing napari, Qt or display is a failure with its reason, never a silent skip. Only
``STACKMFF_ALLOW_NO_GUI=1`` with the napari extra not installed at all skips these tests.
``STACKMFF_WRITE_SCREENSHOT=1`` rewrites docs/napari.png.
"""

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

from stackmff.testing import make_stack, write_stack

try:
    import napari  # noqa: F401
    import pytestqt  # noqa: F401
except ImportError as exc:
    if os.environ.get("STACKMFF_ALLOW_NO_GUI") == "1":
        pytest.skip(f"napari tests skipped (STACKMFF_ALLOW_NO_GUI=1): {exc}",
                    allow_module_level=True)
    raise ImportError(f"the napari plugin's tests need the napari extra and pytest-qt "
                      f"(pip install -e '.[napari]' pytest-qt), or STACKMFF_ALLOW_NO_GUI=1 "
                      f"to skip them: {exc}") from exc

import stackmff
from stackmff.io import read_pages
from stackmff.io.pixels import from_float, to_float
from stackmff.napari.reader import get_reader
from stackmff.napari.session import FuseSession
from stackmff.napari.widget import FuseWidget

SCREENSHOT = Path(__file__).parents[1] / "docs" / "napari.png"
TIMEOUT_MS = 60_000


def display_problem() -> str | None:
    """Why Qt could not open a window here, found before Qt tries (it aborts the process)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform == "offscreen":
        return ("QT_QPA_PLATFORM=offscreen has no OpenGL for napari's canvas: unset it and run "
                "under xvfb-run -a (make test)")
    display = os.environ.get("DISPLAY", "")
    if not display and not os.environ.get("WAYLAND_DISPLAY"):
        return ("no display: run the tests under xvfb-run -a (make test; scripts/setup_gui.sh "
                "installs Xvfb and OpenGL)")
    if display.startswith(":"):
        socket = Path("/tmp/.X11-unix") / f"X{display[1:].split('.')[0]}"
        if not socket.exists():
            return f"DISPLAY={display} but no X server listens at {socket}"
    return None


@pytest.fixture(scope="session", autouse=True)
def _display():
    """Runs before pytest-qt's QApplication (a session fixture too), which would abort."""
    problem = display_problem()
    if problem:
        pytest.fail(problem)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def widget(viewer):
    widget = FuseWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fuse focus stack")
    return widget


def stack_data(colour=True, dtype=np.uint8, n_layers=4):
    layers, _, _ = make_stack(n_layers=n_layers, height=48, width=64, colour=colour, seed=3)
    return from_float(layers, np.dtype(dtype))


def fuse(qtbot, widget, method="depthmap", align=False):
    widget.method.value = method
    widget.align.value = align
    worker = widget.fuse()
    assert worker is not None, widget.status.value
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)
    assert widget.session is not None, widget.status.value
    return widget.session


def add_stack(viewer, widget, data, **kwargs):
    layer = viewer.add_image(data, name="stack", rgb=data.ndim == 4, **kwargs)
    widget.stack.reset_choices()
    widget.stack.value = layer
    return layer


def paint_rectangle(labels, top, left, bottom, right, label):
    """napari's polygon tool: the rectangle's corners, in data coordinates."""
    labels.paint_polygon([[top, left], [top, right], [bottom, right], [bottom, left]], label)


# the manifest and the import boundary ---------------------------------------------------------


def test_the_manifest_declares_the_reader_the_widget_and_the_samples():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("stackmff")
    contributions = manifest.contributions
    assert [w.display_name for w in contributions.widgets] == ["Fuse focus stack"]
    assert {s.key for s in contributions.sample_data} == {"pcb", "synthetic"}
    reader = contributions.readers[0]
    assert reader.accepts_directories and "*.tif" in reader.filename_patterns
    for command in contributions.commands:  # every command names an importable function
        module, name = command.python_name.split(":")
        assert hasattr(__import__(module, fromlist=[name]), name)


def test_the_reader_sample_and_session_do_not_import_napari():
    program = ("import sys, stackmff.napari.reader, stackmff.napari.sample, "
               "stackmff.napari.session\nprint('napari' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", program], check=True, capture_output=True,
                            text=True).stdout
    assert output.strip() == "False"


# reader and sample --------------------------------------------------------------------------


def test_a_folder_opens_as_one_stack_layer(viewer, tmp_path):
    layers, _, _ = make_stack(n_layers=3, height=40, width=52, colour=True)
    paths = write_stack(tmp_path / "shots", layers)
    assert get_reader(str(paths[0])) is None  # one image is not a stack: left to napari
    glob = str(tmp_path / "shots" / "layer_*.png")
    [(from_glob, kwargs, kind)] = get_reader(glob)(glob)
    assert kind == "image" and kwargs["name"] == "shots" and from_glob.shape == (3, 40, 52, 3)

    [layer] = viewer.open(str(tmp_path / "shots"), plugin="stackmff")
    assert layer.data.shape == (3, 40, 52, 3) and layer.data.dtype == np.uint8
    assert layer.rgb and layer.name == "shots"
    assert list(layer.contrast_limits) == [0, 255]
    assert layer.metadata["stackmff"]["paths"] == [str(p) for p in paths]
    np.testing.assert_array_equal(layer.data, from_float(layers, np.dtype(np.uint8)))


def test_a_multipage_tiff_opens_as_one_16bit_stack_layer(viewer, tmp_path):
    data = stack_data(colour=False, dtype=np.uint16, n_layers=5)
    tifffile.imwrite(tmp_path / "z.tif", data)
    single = tmp_path / "single.tif"
    tifffile.imwrite(single, data[0])
    assert get_reader(str(single)) is None

    [layer] = viewer.open(str(tmp_path / "z.tif"), plugin="stackmff")
    assert layer.name == "z" and not layer.rgb
    assert layer.data.dtype == np.uint16 and list(layer.contrast_limits) == [0, 65535]
    np.testing.assert_array_equal(layer.data, data)


def test_the_sample_opens_and_fuses_and_the_screenshot_shows_it(viewer, widget, qtbot):
    [layer] = viewer.open_sample("stackmff", "pcb")
    assert layer.data.shape == (7, 576, 768, 3) and layer.data.dtype == np.uint8
    assert len(layer.metadata["stackmff"]["paths"]) == 7
    widget.stack.value = layer
    session = fuse(qtbot, widget)
    widget.labels_layer.selected_label = 5  # paint with layer 4, the stack shows it
    paint_rectangle(widget.labels_layer, 330, 60, 470, 240, 5)
    assert widget.regather().changed[400, 150] and viewer.dims.current_step[0] == 4
    viewer.window.resize(1500, 860)
    viewer.reset_view()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.zoom *= 1.3
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.ndim == 3 and shot.shape[2] == 4 and shot[..., :3].std() > 10  # not blank
    assert session.focus_map.shape == (576, 768)
    if os.environ.get("STACKMFF_WRITE_SCREENSHOT") == "1":
        from PIL import Image

        Image.fromarray(shot[..., :3]).quantize(256).save(SCREENSHOT, optimize=True)


def test_the_synthetic_sample_stands_in_where_the_example_is_not_installed(viewer, tmp_path,
                                                                          monkeypatch):
    import stackmff.napari.sample as sample

    [layer] = viewer.open_sample("stackmff", "synthetic")
    assert layer.data.shape == (5, 192, 256, 3) and layer.data.dtype == np.uint8
    monkeypatch.setattr(sample, "EXAMPLE", tmp_path / "absent")  # as in an installed wheel
    [(data, kwargs, _)] = sample.pcb_stack()
    np.testing.assert_array_equal(data, layer.data)
    assert kwargs["name"] == "synthetic stack (examples/pcb is not installed)"


# fusing and retouching ----------------------------------------------------------------------


@pytest.mark.parametrize("colour, dtype", [(True, np.uint8), (False, np.uint16)])
def test_fuse_adds_the_fused_image_the_focus_map_labels_and_the_confidence(
        viewer, widget, qtbot, colour, dtype):
    data = stack_data(colour, dtype)
    add_stack(viewer, widget, data)
    session = fuse(qtbot, widget)

    fused = viewer.layers["stack fused (depthmap)"]
    labels = viewer.layers["stack focus map"]
    confidence = viewer.layers["stack confidence"]
    assert type(labels).__name__ == "Labels"
    expected = stackmff.fuse_stack(to_float(data), "depthmap")
    np.testing.assert_array_equal(session.focus_map, expected.focus_map)
    np.testing.assert_array_equal(labels.data, expected.focus_map + 1)  # label = layer + 1
    assert fused.data.dtype == dtype
    np.testing.assert_array_equal(fused.data, stackmff.gather(data, expected.focus_map))
    np.testing.assert_array_equal(confidence.data, expected.confidence)


def test_painted_labels_regather_exactly_and_nothing_else_changes(viewer, widget, qtbot):
    data = stack_data()
    add_stack(viewer, widget, data)
    session = fuse(qtbot, widget)
    labels, fused = widget.labels_layer, widget.fused_layer
    before, confidence_before = fused.data.copy(), widget.confidence_layer.data.copy()
    original = labels.data.copy()
    region = original[10:30, 8:40]
    layer = int((np.bincount(region.ravel()).argmax()) % len(data))  # another layer, 0-based

    paint_rectangle(labels, 10, 8, 30, 40, layer + 1)
    scratch = viewer.add_labels(np.zeros_like(original))  # where the same strokes reach
    paint_rectangle(scratch, 10, 8, 30, 40, 1)
    region = scratch.data == 1
    viewer.layers.remove(scratch)
    assert region[11:30, 9:40].all() and not region[:9].any() and not region[:, 42:].any()
    changed = labels.data != original
    assert changed.any() and not changed[~region].any()
    retouched = widget.regather()

    np.testing.assert_array_equal(retouched.changed, changed)
    np.testing.assert_array_equal(fused.data[region], data[layer][region])
    np.testing.assert_array_equal(fused.data[~region], before[~region])
    confidence = widget.confidence_layer.data
    assert (confidence[changed] == 0).all()
    np.testing.assert_array_equal(confidence[~changed], confidence_before[~changed])
    np.testing.assert_array_equal(retouched.focus_map[region], layer)
    np.testing.assert_array_equal(retouched.focus_map[~region], session.focus_map[~region])


def test_erased_labels_go_back_to_the_method_choice(viewer, widget, qtbot):
    data = stack_data()
    add_stack(viewer, widget, data)
    fuse(qtbot, widget)
    labels, fused = widget.labels_layer, widget.fused_layer
    before = fused.data.copy()
    paint_rectangle(labels, 5, 5, 20, 20, 2)
    widget.regather()
    paint_rectangle(labels, 0, 0, 25, 25, 0)  # napari's eraser paints 0
    retouched = widget.regather()
    assert not retouched.changed.any()
    np.testing.assert_array_equal(fused.data, before)


def test_a_label_that_names_no_layer_is_refused_in_one_line(viewer, widget, qtbot):
    data = stack_data()
    add_stack(viewer, widget, data)
    fuse(qtbot, widget)
    before = widget.fused_layer.data.copy()
    widget.labels_layer.data_setitem((np.array([3]), np.array([7])), 9)
    assert widget.regather() is None
    assert widget.status.value == ("error: label 9 (first at x=7, y=3) names no layer: the "
                                   "stack has 4 layers, labels 1-4 (0 keeps the method's "
                                   "choice)")
    np.testing.assert_array_equal(widget.fused_layer.data, before)


def test_the_stack_shows_the_layer_under_the_cursor_and_the_picked_label(viewer, widget, qtbot):
    data = stack_data()
    add_stack(viewer, widget, data)
    session = fuse(qtbot, widget)
    for y, x in [(5, 3), (40, 60), (20, 33)]:
        event = type("MouseMove", (), {"position": (0.0, float(y), float(x))})()
        widget._on_mouse_move(viewer, event)  # what napari calls as the mouse moves
        assert viewer.dims.current_step[0] == session.focus_map[y, x]
    widget.labels_layer.selected_label = 3
    assert viewer.dims.current_step[0] == 2
    widget.follow.value = False
    widget._on_mouse_move(viewer, type("MouseMove", (), {"position": (0.0, 5.0, 3.0)})())
    assert viewer.dims.current_step[0] == 2


def test_save_writes_the_image_the_map_and_the_confidence(viewer, widget, qtbot, tmp_path):
    data = stack_data()
    paths = write_stack(tmp_path / "shots", to_float(data))
    [layer] = viewer.open(str(tmp_path / "shots"), plugin="stackmff")
    widget.stack.value = layer
    session = fuse(qtbot, widget)
    paint_rectangle(widget.labels_layer, 10, 10, 30, 30, 1)
    retouched = session.regather(widget.labels_layer.data)

    written = widget.save(tmp_path / "out" / "fused.png")
    names = sorted(p.name for p in written)
    assert names == ["fused.png", "fused_confidence.png", "fused_focus_map.png",
                     "fused_focus_map_indices.png"]
    [image] = read_pages(tmp_path / "out" / "fused.png")
    np.testing.assert_array_equal(image, retouched.fused)
    [indices] = read_pages(tmp_path / "out" / "fused_focus_map_indices.png")
    np.testing.assert_array_equal(indices, retouched.focus_map)
    [confidence] = read_pages(tmp_path / "out" / "fused_confidence.png")
    assert (confidence[retouched.changed] == 0).all() and confidence.max() > 0

    original = paths[0].read_bytes()
    assert widget.save(paths[0]) is None  # an input is never overwritten
    assert widget.status.value.startswith("error: refusing to overwrite input file")
    assert paths[0].read_bytes() == original


def test_v3_with_precision_and_alignment_adds_the_aligned_stack(viewer, widget, qtbot):
    data = stack_data()
    add_stack(viewer, widget, data)
    widget.method.value = "v3"
    assert widget.precision.enabled
    widget.precision.value = "fp32"
    session = fuse(qtbot, widget, method="v3", align=True)
    aligned = viewer.layers["stack aligned"]
    assert session.aligned and widget.stack_layer is aligned
    np.testing.assert_array_equal(aligned.data, session.layers)
    np.testing.assert_array_equal(widget.fused_layer.data,
                                  stackmff.gather(session.layers, session.focus_map))
    widget.method.value = "pyramid"
    assert not widget.precision.enabled


def test_the_method_controls_are_the_registrys_options(viewer, widget):
    """Choices, defaults and tooltips come from the method's option table; a control is
    enabled for the methods that take its option, and only those pass it on."""
    from stackmff.methods import get_method

    table = get_method("v3").options
    for name, control in (("blend", widget.blend), ("precision", widget.precision)):
        option = table.get(name)
        assert tuple(control.choices) == option.choices and control.value == option.default
        assert control.tooltip == option.help
    widget.method.value = "v3+"
    widget.blend.value = "band"
    assert widget.blend.enabled and widget.method_options() == {"precision": "fp32",
                                                                "blend": "band"}
    widget.method.value = "depthmap"
    assert not widget.blend.enabled and widget.method_options() == {}


def test_v3_with_a_soft_blend_shows_the_blended_image(viewer, widget, qtbot):
    data = stack_data(n_layers=3)[:, :32, :32]
    add_stack(viewer, widget, data)
    widget.blend.value = "soft"
    session = fuse(qtbot, widget, method="v3")
    expected = stackmff.prepare_method("v3", blend="soft")(session.scale.to_unit(data))
    np.testing.assert_array_equal(widget.fused_layer.data,
                                  session.scale.from_unit(expected.fused))
    assert not np.array_equal(widget.fused_layer.data, stackmff.gather(data, session.focus_map))


def test_fusing_runs_in_a_worker_thread_while_the_viewer_stays_free(viewer, widget, qtbot,
                                                                    monkeypatch):
    import stackmff.napari.session as session_module

    released, seen = threading.Event(), {}

    def slow_prepare(method, **options):
        fuser = stackmff.prepare_method(method, **options)

        def fuse_when_released(layers):
            seen["thread"] = threading.current_thread()
            seen["released"] = released.wait(timeout=30)
            return fuser(layers)

        return fuse_when_released

    monkeypatch.setattr(session_module, "prepare_method", slow_prepare)
    add_stack(viewer, widget, stack_data())
    widget.fuse()
    assert widget.busy and widget.session is None  # fuse() came back while fusing
    released.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)
    assert seen["released"] and seen["thread"] is not threading.main_thread()
    assert isinstance(widget.session, FuseSession)


def test_a_failed_fusion_reports_one_line_and_adds_nothing(viewer, widget, qtbot):
    add_stack(viewer, widget, stack_data()[:, :8, :8])  # too small to align
    count = len(viewer.layers)
    widget.align.value = True
    widget.fuse()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)
    assert widget.session is None and len(viewer.layers) == count
    assert widget.status.value.startswith("error: fusing failed: ")
    assert "\n" not in widget.status.value


# microscopy files: one layer per channel, fused together ------------------------------------


def open_ome_tiff(viewer, tmp_path):
    from microscopy_files import hyperstack, write_ome_tiff

    data = hyperstack()[0][0]  # (C, Z, Y, X) of time point 0
    path = tmp_path / "cells.ome.tif"
    write_ome_tiff(path, data, axes="CZYX")
    layers = viewer.open(str(path), plugin="stackmff")
    return path, data, layers


def test_an_ome_tiff_opens_one_layer_per_channel_scaled_in_micrometres(viewer, tmp_path):
    path, data, layers = open_ome_tiff(viewer, tmp_path)
    assert [layer.name for layer in layers] == ["cells DAPI", "cells GFP"]
    for c, layer in enumerate(layers):
        assert np.array_equal(layer.data, data[c]) and layer.data.dtype == np.uint16
        assert np.allclose(layer.scale, [0.5, 0.25, 0.25])
        assert layer.metadata["stackmff"]["microscopy"]["channel"] == c
    assert get_reader(str(tmp_path / "cells.ome.tif")).__name__ == "read_microscopy"


def test_an_ome_zarr_with_time_points_opens_one_layer_per_channel(viewer, tmp_path):
    from microscopy_files import hyperstack, write_ome_zarr

    data = hyperstack()[0]  # (T, C, Z, Y, X)
    write_ome_zarr(tmp_path / "plate.ome.zarr", data)
    layers = viewer.open(str(tmp_path / "plate.ome.zarr"), plugin="stackmff")
    assert [layer.name for layer in layers] == ["plate DAPI", "plate GFP"]
    for c, layer in enumerate(layers):
        assert np.array_equal(np.asarray(layer.data), data[:, c])  # T stays a leading axis
        assert np.allclose(layer.scale, [1.0, 0.5, 0.25, 0.25])


def test_channels_fuse_on_the_focus_channel_and_regather_every_channel_exactly(
        viewer, widget, qtbot, tmp_path):
    from microscopy_files import Z

    _, data, layers = open_ome_tiff(viewer, tmp_path)
    widget.stack.reset_choices()
    widget.stack.value = layers[0]
    assert not widget.focus_channel.native.isHidden()  # offered for a stack with channels
    widget.focus_channel.value = 1
    session = fuse(qtbot, widget)
    expected = stackmff.fuse_stack(data, "depthmap", axes="CZYX", focus_channel=1)
    assert np.array_equal(session.focus_map, expected.focus_map[0])
    fused_layers = widget.fused_layers
    assert [layer.name for layer in fused_layers] == ["cells DAPI fused (depthmap)",
                                                      "cells GFP fused (depthmap)"]
    before = [layer.data.copy() for layer in fused_layers]
    for c in range(2):
        assert np.array_equal(before[c], expected.fused[0, c])
    top, left, bottom, right = 10, 12, 30, 40
    target = (int(session.focus_map[20, 20]) + 2) % Z
    paint_rectangle(widget.labels_layer, top, left, bottom, right, target + 1)
    retouched = widget.regather()
    assert retouched is not None, widget.status.value
    inside = np.zeros(session.focus_map.shape, bool)
    inside[top:bottom + 1, left:right + 1] = True
    assert widget.labels_layer.data[inside].tolist() == [target + 1] * int(inside.sum())
    for c, layer in enumerate(fused_layers):
        assert np.array_equal(layer.data[inside], data[c, target][inside])
        assert np.array_equal(layer.data[~inside], before[c][~inside])


def test_channels_save_an_ome_tiff_and_the_index_map(viewer, widget, qtbot, tmp_path):
    from microscopy_files import ome_pixels

    path, data, layers = open_ome_tiff(viewer, tmp_path)
    widget.stack.reset_choices()
    widget.stack.value = layers[1]
    widget.focus_channel.value = "mean"
    session = fuse(qtbot, widget)
    assert widget.save(path) is None  # never over the input
    written = widget.save(tmp_path / "out.ome.tif")
    assert {p.name for p in written} >= {"out.ome.tif", "out_focus_map.png",
                                         "out_focus_map_indices.png"}
    saved = tifffile.imread(tmp_path / "out.ome.tif")
    assert np.array_equal(saved.reshape(2, *data.shape[2:]),
                          np.moveaxis(session.fused, -1, 0))
    assert ome_pixels(tmp_path / "out.ome.tif")["names"] == ["DAPI", "GFP"]
    indices = read_pages(tmp_path / "out_focus_map_indices.png")[0]
    assert np.array_equal(indices, session.focus_map)


# the 3D view ----------------------------------------------------------------------------------


def test_the_3d_view_adds_the_surface_coloured_and_scaled_like_the_stack(viewer, widget, qtbot):
    layer = add_stack(viewer, widget, stack_data(), scale=(2.0, 0.5, 0.5))
    session = fuse(qtbot, widget)
    assert session.depth is not None  # depthmap refines its map below one layer
    count = len(viewer.layers)
    surface = widget.show_surface()
    assert surface is not None, widget.status.value
    assert len(viewer.layers) == count + 1
    assert [type(x).__name__ for x in viewer.layers].count("Surface") == 1
    expected, colours = session.surface(widget.labels_layer.data)
    vertices, faces = surface.data[:2]
    assert len(vertices) == expected.vertex_count == 48 * 64  # a tiny stack: every pixel
    assert len(faces) == 2 * 47 * 63
    assert np.allclose(surface.scale, layer.scale) and np.allclose(surface.scale, (2, 0.5, 0.5))
    assert surface.vertex_colors.shape == (48 * 64, 4) and surface.vertex_colors.std() > 0.05
    assert viewer.dims.ndisplay == 3
    assert vertices[:, 0].min() >= 0 and vertices[:, 0].max() <= len(session.layers) - 1
    # the view again replaces the surface, it does not add another
    widget.show_surface()
    assert [type(x).__name__ for x in viewer.layers].count("Surface") == 1


def test_the_3d_view_of_channels_is_in_micrometres(viewer, widget, qtbot, tmp_path):
    _, data, layers = open_ome_tiff(viewer, tmp_path)
    widget.stack.reset_choices()
    widget.stack.value = layers[0]
    fuse(qtbot, widget)
    surface = widget.show_surface()
    assert surface is not None, widget.status.value
    assert np.allclose(surface.scale, [0.5, 0.25, 0.25])
    assert len(surface.data[0]) == data.shape[-2] * data.shape[-1]
