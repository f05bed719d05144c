"""The "Fuse focus stack" dock widget.

Fuse: the chosen image layer ``(L, H, W[, 3])`` is fused in a worker thread (napari's
``create_worker``, with a progress bar), so the viewer stays responsive; the result arrives as
three layers: the fused image, the focus map as a Labels layer (label = layer index + 1, so that
0 stays napari's "no label") and the confidence, where the method has one.

Retouch: paint the Labels layer with napari's own brush, label ``k + 1`` taking layer ``k``;
while the cursor moves over the image (or a label is picked), the stack shows the layer that
the label names. "Re-gather" copies the painted pixels from their layers, exactly. "Save" writes
the image, the focus map and the confidence together (see :mod:`stackmff.napari.session`).

3D view: the focus map as a surface (:mod:`stackmff.surface`, as ``stackmff fuse --mesh``
makes it), coloured by the fused image, placed in the stack's own space (the stack layer's
scale: µm for a microscopy file), and the viewer turned to 3D.

Channels: the channel layers of one microscopy file are fused together (see
:mod:`stackmff.napari.channels`): the "focus channel" decides, every channel follows, and each
gets its own fused layer in its colormap.
"""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton
from napari.layers import Image, Labels, Surface
from napari.qt.threading import create_worker
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_error, show_info

from stackmff.api import DEFAULT_METHOD
from stackmff.errors import StackError
from stackmff.io.focusmap import layer_colours
from stackmff.methods import all_options, get_method, list_methods
from stackmff.napari.channels import (
    ChannelSession,
    channel_choices,
    channel_layers,
    fuse_channels,
    microscopy_info,
)
from stackmff.napari.session import FuseSession, Retouched, fuse_layer

SAVE_TYPES = "*.png *.tif *.tiff *.jpg"
# the method options offered as controls; their choices, defaults and tooltips are the
# registry's, and each is enabled for the methods that take it
SHOWN_OPTIONS = ("precision", "blend")


class FuseWidget(Container):
    """Fuse an image layer, show its focus map as labels, re-gather what was painted, save.

    Attributes:
        session: the latest fusion (``None`` before the first one finishes).
        worker: the running (or last) fusion worker.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.session: FuseSession | None = None
        self.worker = None
        self.stack_layer: Image | None = None
        self.fused_layer: Image | None = None
        self.labels_layer: Labels | None = None
        self.confidence_layer: Image | None = None
        self.fused_layers: list[Image] = []

        self.stack = ComboBox(label="stack", choices=self._stack_choices,
                              tooltip="the image layer (L, H, W[, 3]) to fuse")
        self.method = ComboBox(label="method", choices=[m.name for m in list_methods()],
                               value=DEFAULT_METHOD)
        self.option_controls = option_controls(SHOWN_OPTIONS)
        self.precision, self.blend = (self.option_controls[n] for n in ("precision", "blend"))
        self.focus_channel = ComboBox(label="focus channel", choices=self._channel_choices,
                                      tooltip="the channel that decides the focus; every "
                                      "channel is taken from the layer it chose")
        self.align = CheckBox(text="align the layers first")
        self.fuse_button = PushButton(text="Fuse")
        self.status = Label(value="")
        self.follow = CheckBox(text="show the layer under the cursor", value=True,
                               tooltip="move the stack's Z to the layer the label names")
        self.regather_button = PushButton(text="Re-gather")
        self.surface_button = PushButton(text="3D view",
                                         tooltip="the focus map as a surface coloured by the "
                                                 "fused image (turn it in napari's 3D mode)")
        self.surface_layer: Surface | None = None
        self.output = FileEdit(label="save as", mode="w", filter=SAVE_TYPES)
        self.save_button = PushButton(text="Save")
        self.extend([self.stack, self.method, self.focus_channel,
                     *self.option_controls.values(), self.align, self.fuse_button,
                     self.status, self.follow, self.regather_button, self.surface_button,
                     self.output, self.save_button])

        self.method.changed.connect(self._update_enabled)
        self.stack.changed.connect(self._update_channels)
        self.fuse_button.changed.connect(self.fuse)
        self.regather_button.changed.connect(self.regather)
        self.surface_button.changed.connect(lambda: self.show_surface())
        self.save_button.changed.connect(lambda: self.save())
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self.stack.reset_choices)
        napari_viewer.mouse_move_callbacks.append(self._on_mouse_move)
        self.native.destroyed.connect(self._disconnect)
        self._update_enabled()
        self._update_channels()

    # fusing -----------------------------------------------------------------------------

    def fuse(self):
        """Start fusing the chosen layer in a worker thread; returns the worker (or ``None``
        when there is nothing to fuse)."""
        layer = self.stack.value
        if layer is None:
            self._fail("open a focus stack first (File > Open Folder, or File > Open Sample)")
            return None
        method = self.method.value
        options = self.method_options()
        paths = layer.metadata.get("stackmff", {}).get("paths", ())
        stages = 3 + bool(self.align.value)
        if microscopy_info(layer) is not None:
            worker = self._channel_worker(layer, method, options, paths)
            if worker is None:
                return None
        else:
            worker = create_worker(fuse_layer, layer.data, method, align=bool(self.align.value),
                                   options=options, paths=paths, _ignore_errors=True,
                                   _progress={"total": stages, "desc": f"fuse ({method})"})
        worker.yielded.connect(self._say)
        worker.returned.connect(lambda session: self._show(session, layer))
        worker.errored.connect(self._fuse_failed)
        worker.finished.connect(self._finished)
        self.worker = worker
        self.fuse_button.enabled = False
        self._say(f"fusing {layer.name} ...")
        worker.start()
        return worker

    def _channel_worker(self, layer: Image, method: str, options: dict, paths):
        """The worker that fuses every channel layer of ``layer``'s file (at the time point
        shown, for a file with several)."""
        info = microscopy_info(layer)
        if self.align.value:
            self._fail("aligning is not offered for microscopy channels: fuse without it")
            return None
        try:
            layers = channel_layers(layer, self.viewer.layers)
        except StackError as exc:
            self._fail(str(exc))
            return None
        data = [np.asarray(c.data) for c in layers]
        if layer.ndim == 4:  # (T, Z, Y, X): the time point on the slider
            t = int(self.viewer.dims.current_step[self.viewer.dims.ndim - layer.ndim])
            data = [d[min(t, len(d) - 1)] for d in data]
        return create_worker(fuse_channels, np.stack(data), method,
                             focus_channel=self.focus_channel.value, info=info, options=options,
                             paths=paths, _ignore_errors=True,
                             _progress={"total": 1, "desc": f"fuse ({method})"})

    @property
    def busy(self) -> bool:
        """Whether a fusion is running."""
        return not self.fuse_button.enabled

    def _show(self, session: FuseSession, source: Image) -> None:
        """Add the fusion's layers, placed over the source layer."""
        viewer, name = self.viewer, source.name
        scale = np.asarray(source.scale)
        translate = np.asarray(source.translate, float).copy()
        translate[-2:] += np.asarray(session.offset) * scale[-2:]
        stack_layer = source
        if session.aligned:
            stack_layer = viewer.add_image(session.layers, name=f"{name} aligned",
                                           rgb=source.rgb, scale=scale, translate=translate,
                                           contrast_limits=source.contrast_limits,
                                           metadata={"stackmff": {"paths": session.paths}})
        placed = {"scale": scale[-2:], "translate": translate[-2:]}
        if isinstance(session, ChannelSession):
            self.fused_layers = [
                viewer.add_image(session.fused[..., c], name=f"{layer.name} fused "
                                 f"({session.method})", colormap=layer.colormap,
                                 contrast_limits=layer.contrast_limits, blending=layer.blending,
                                 **placed)
                for c, layer in enumerate(channel_layers(source, viewer.layers))]
            self.fused_layer = self.fused_layers[0]
        else:
            self.fused_layer = viewer.add_image(
                session.fused, name=f"{name} fused ({session.method})", rgb=source.rgb,
                contrast_limits=source.contrast_limits, **placed)
            self.fused_layers = [self.fused_layer]
        self.confidence_layer = None
        if session.confidence is not None:
            self.confidence_layer = viewer.add_image(
                session.confidence, name=f"{name} confidence", colormap="gray",
                contrast_limits=(0.0, 1.0), visible=False, **placed)
        labels = viewer.add_labels(session.labels(), name=f"{name} focus map", opacity=0.4,
                                   colormap=label_colormap(len(session.layers)), **placed)
        labels.events.selected_label.connect(self._on_selected_label)
        self.stack_layer, self.labels_layer, self.session = stack_layer, labels, session
        viewer.layers.selection.active = labels
        self._say(f"fused {len(session.layers)} layers with {session.method}: paint the "
                  f"focus map (label = layer + 1), then Re-gather")
        self._update_enabled()

    def _fuse_failed(self, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, StackError) else f"{type(exc).__name__}: {exc}"
        self._fail(f"fusing failed: {message}")

    def _finished(self) -> None:
        self.fuse_button.enabled = True

    # retouching -------------------------------------------------------------------------

    def regather(self) -> Retouched | None:
        """Update the fused image (and the confidence) from the edited Labels layer."""
        if not self._ready():
            return None
        try:
            retouched = self.session.regather(self.labels_layer.data)
        except StackError as exc:
            self._fail(str(exc))
            return None
        if isinstance(self.session, ChannelSession):
            for c, layer in enumerate(self.fused_layers):
                layer.data = retouched.fused[..., c]
        else:
            self.fused_layer.data = retouched.fused
        if self.confidence_layer is not None and self.confidence_layer in self.viewer.layers:
            self.confidence_layer.data = retouched.confidence
        self._say(f"re-gathered: {int(retouched.changed.sum())} pixels from other layers")
        return retouched

    def show_surface(self) -> Surface | None:
        """Add the (retouched) focus map as a Surface layer over the stack, coloured by the
        fused image, and show it in 3D; returns the layer."""
        if not self._ready():
            return None
        try:
            surface, colours = self.session.surface(self.labels_layer.data)
        except StackError as exc:
            self._fail(str(exc))
            return None
        stack = self.stack_layer if self.stack_layer in self.viewer.layers else None
        scale = np.ones(3) if stack is None else np.asarray(stack.scale, float)[-3:]
        # the stack layer is the one fused (the aligned layers are placed where they belong)
        translate = np.zeros(3) if stack is None else np.asarray(stack.translate, float)[-3:]
        rows, cols = np.meshgrid(surface.rows, surface.cols, indexing="ij")
        vertices = np.stack([surface.positions.ravel(), rows.ravel(), cols.ravel()], 1)
        name = f"{stack.name if stack is not None else 'stack'} surface"
        if self.surface_layer is not None and self.surface_layer in self.viewer.layers:
            self.viewer.layers.remove(self.surface_layer)
        self.surface_layer = self.viewer.add_surface(
            (vertices.astype(np.float32), surface.faces.astype(np.int32)), name=name,
            vertex_colors=colours, scale=scale, translate=translate, shading="smooth")
        self.viewer.dims.ndisplay = 3
        self._say(f"surface of {surface.vertex_count} vertices: turn it with the mouse")
        return self.surface_layer

    def save(self, output: str | Path | None = None) -> list[Path] | None:
        """Write the retouched image and its maps to ``output`` (default: the "save as"
        field); returns the paths written."""
        if not self._ready():
            return None
        output = Path(output if output is not None else self.output.value)
        if str(output) in ("", ".") or output.is_dir():
            self._fail("choose a file to save to (.png or .tif)")
            return None
        try:
            written = self.session.save(output, self.labels_layer.data)
        except StackError as exc:
            self._fail(str(exc))
            return None
        self.regather()
        self._say(f"saved {', '.join(p.name for p in written)}")
        show_info(f"saved {', '.join(map(str, written))}")
        return written

    def show_layer(self, index: int) -> None:
        """Show layer ``index`` (0-based) of the fused stack."""
        stack = self.stack_layer
        if stack is None or stack not in self.viewer.layers:
            return
        z = stack.ndim - 3  # (T, Z, Y, X) channel layers have Z second (ndim leaves out RGB)
        index = int(np.clip(index, 0, stack.data.shape[z] - 1))
        axis = self.viewer.dims.ndim - stack.ndim + z
        position = np.zeros(stack.ndim)
        position[z] = index
        self.viewer.dims.set_point(axis, stack.data_to_world(position)[z])

    def show_layer_at(self, position) -> int | None:
        """Show the layer that the focus map names at a world ``position``; returns it."""
        if self.labels_layer is None or self.labels_layer not in self.viewer.layers:
            return None
        pixel = np.round(self.labels_layer.world_to_data(position)[-2:]).astype(int)
        labels = self.labels_layer.data
        if not (0 <= pixel[0] < labels.shape[0] and 0 <= pixel[1] < labels.shape[1]):
            return None
        label = int(labels[pixel[0], pixel[1]])
        index = label - 1 if label > 0 else int(self.session.focus_map[pixel[0], pixel[1]])
        self.show_layer(index)
        return index

    def _on_mouse_move(self, viewer, event) -> None:
        if self.follow.value:
            self.show_layer_at(event.position)

    def _on_selected_label(self, event=None) -> None:
        if self.labels_layer is not None and self.labels_layer.selected_label > 0:
            self.show_layer(self.labels_layer.selected_label - 1)

    # plumbing ---------------------------------------------------------------------------

    def _ready(self) -> bool:
        if self.session is None:
            self._fail("fuse a stack first")
            return False
        for layer in (self.labels_layer, *self.fused_layers):
            if layer not in self.viewer.layers:
                self._fail(f"the layer {layer.name!r} was removed: fuse again")
                return False
        return True

    def _stack_choices(self, _widget=None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and layer.ndim >= 3]

    def _channel_choices(self, _widget=None) -> list[tuple[str, int | str]]:
        return channel_choices(self.stack.value)

    def _update_channels(self, *_) -> None:
        """Offer the focus channel only for a stack with channels."""
        self.focus_channel.reset_choices()
        info = microscopy_info(self.stack.value)
        self.focus_channel.visible = info is not None and info["channels"] > 1

    def method_options(self) -> dict:
        """The shown options' values that the chosen method takes."""
        taken = get_method(self.method.value).options
        return {name: control.value for name, control in self.option_controls.items()
                if name in taken}

    def _update_enabled(self, *_) -> None:
        taken = get_method(self.method.value).options
        for name, control in self.option_controls.items():
            control.enabled = name in taken
        for widget in (self.regather_button, self.save_button, self.follow, self.output,
                       self.surface_button):
            widget.enabled = self.session is not None

    def _say(self, message: str) -> None:
        self.status.value = message

    def _fail(self, message: str) -> None:
        self._say(f"error: {message}")
        show_error(message)

    def _disconnect(self, *_) -> None:
        if self._on_mouse_move in self.viewer.mouse_move_callbacks:
            self.viewer.mouse_move_callbacks.remove(self._on_mouse_move)


def option_controls(names) -> dict[str, ComboBox]:
    """A drop-down for each named method option, as its registry entry declares it."""
    table = all_options()
    controls = {}
    for name in names:
        option = table.get(name)
        controls[name] = ComboBox(label=name, choices=list(option.choices),
                                  value=option.default, tooltip=option.help)
    return controls


def label_colormap(n_layers: int) -> DirectLabelColormap:
    """Label ``k + 1`` in the colour of layer ``k`` in ``stackmff fuse --focus-map``
    pictures (turbo: near blue to far red); 0 is transparent."""
    colours = {None: np.zeros(4), 0: np.zeros(4)}
    for k, rgb in enumerate(layer_colours(n_layers)):
        colours[k + 1] = np.append(rgb / 255.0, 1.0)
    return DirectLabelColormap(color_dict=colours)
