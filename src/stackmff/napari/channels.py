"""Fusing the channel layers of one microscopy file together: the focus is decided on one
channel (or their mean) by :func:`stackmff.fuse_stack` with named axes, and every channel is
taken from the layer chosen there.

A :class:`ChannelSession` keeps the stack as ``(Z, Y, X, C)`` and the fused image as
``(Y, X, C)``, so re-gathering a painted map is :meth:`FuseSession.regather` itself: every
channel of a changed pixel is copied from its new layer, exactly. Saving writes what
``stackmff fuse`` writes for a microscopy file: an OME-TIFF ``TCYX`` with the physical sizes
and channels, the focus-map picture, its indices and the confidence.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io.atomic import write_files_atomically
from stackmff.microscopy.axes import Metadata
from stackmff.napari.hyperstack_reader import layer_metadata
from stackmff.napari.session import FuseSession, UnitScale
from stackmff.outputs import Microscopy, OutputPlan, Products, Target
from stackmff.surface import texture_picture


def microscopy_info(layer) -> dict | None:
    """The reader's ``microscopy`` entry of a layer, or ``None`` for other layers."""
    return getattr(layer, "metadata", {}).get("stackmff", {}).get("microscopy")


def channel_layers(layer, layers: Sequence) -> list:
    """The layers (among ``layers``) opened from the same file as ``layer``, in channel
    order; just ``[layer]`` for a layer that is not from a microscopy file.

    Raises:
        StackError: a channel layer of that file was removed from the viewer.
    """
    info = microscopy_info(layer)
    if info is None:
        return [layer]
    found = {}
    for other in layers:
        other_info = microscopy_info(other)
        if other_info is not None and other_info["group"] == info["group"]:
            found.setdefault(other_info["channel"], other)
    missing = [c for c in range(info["channels"]) if c not in found]
    if missing:
        raise StackError(f"channel {missing[0]} of {info['path']} is no longer in the viewer: "
                         "open the file again")
    return [found[c] for c in range(info["channels"])]


def channel_choices(layer) -> list[tuple[str, int | str]]:
    """The focus-channel options of a layer: the mean, then each channel by name."""
    info = microscopy_info(layer)
    if info is None or info["channels"] < 2:
        return [("mean", "mean")]
    names = info.get("names") or [None] * info["channels"]
    return [("mean", "mean")] + [(f"{c}: {n or f'C{c}'}", c) for c, n in enumerate(names)]


@dataclass(frozen=True)
class ChannelSession(FuseSession):
    """A fusion of several channels; ``layers`` is ``(Z, Y, X, C)``, ``fused`` ``(Y, X, C)``.

    Attributes:
        metadata: the file's physical sizes and channels (for the saved OME-TIFF).
        focus_channel: the channel that decided the focus (an index, or ``"mean"``).
    """

    metadata: Metadata = Metadata()
    focus_channel: int | str = "mean"

    @property
    def channels(self) -> int:
        return self.layers.shape[-1]

    def picture(self, fused: np.ndarray) -> np.ndarray:
        """The channels in their colours, added (as the viewer shows them)."""
        return texture_picture(np.moveaxis(fused, -1, 0), self.metadata.colors(self.channels))

    def save(self, output: str | Path, labels: np.ndarray) -> list[Path]:
        """Write ``name.ome.tif`` (``TCYX``, every channel re-gathered from the edited map),
        ``name_focus_map.png``, ``name_focus_map_indices.png`` and, where the method has
        one, ``name_confidence.png``, all together.

        Raises:
            StackError: an output that is not a TIFF or is one of the input files, or labels
                that name no layer; nothing is written then.
        """
        output = Path(output)
        if not output.name.lower().endswith((".tif", ".tiff")):
            raise StackError(f"cannot write {output}: save channels as an .ome.tif")
        plan = OutputPlan.beside(output, focus_map=True,
                                 confidence=self.confidence is not None)
        plan.check(Target(inputs=tuple(Path(p) for p in self.paths)))
        retouched = self.regather(labels)
        fused = np.moveaxis(retouched.fused, -1, 0)[None]  # (T=1, C, Y, X) of one scene
        confidences = None if retouched.confidence is None else [retouched.confidence]
        products = Products(fused[None], [retouched.focus_map.astype(np.uint16)],
                            confidences, len(self.layers), self.method,
                            Microscopy(self.metadata))
        files = plan.encode(products)
        write_files_atomically(files)
        return list(files)


def fuse_channels(czyx: np.ndarray, method: str, *, focus_channel: int | str = "mean",
                  info: dict | None = None, options: dict | None = None,
                  paths: Sequence[str] = ()) -> Generator[str, None, ChannelSession]:
    """Fuse a ``(C, Z, Y, X)`` stack with :func:`stackmff.fuse_stack` (``axes="CZYX"``), as a
    generator for a worker thread (as :func:`stackmff.napari.session.fuse_layer`).

    Raises:
        StackError: an unknown method or option, a focus channel the stack does not have, or
            a method that makes no focus map.
    """
    from stackmff.api import fuse_stack

    czyx = np.asarray(czyx)
    if czyx.ndim != 4 or czyx.shape[1] < 2:
        raise StackError(f"the channels of a focus stack are (C, Z, Y, X) with Z >= 2, got "
                         f"{czyx.shape}")
    metadata = layer_metadata(info or {})
    yield f"fusing {czyx.shape[1]} layers of {czyx.shape[0]} channels with {method}"
    result = fuse_stack(czyx, method, axes="CZYX", focus_channel=focus_channel,
                        metadata=metadata, **(options or {}))
    confidence = None if result.confidence is None else result.confidence[0]
    return ChannelSession(np.moveaxis(czyx, 0, -1), UnitScale(np.dtype(czyx.dtype)), method,
                          np.moveaxis(result.fused[0], 0, -1), result.focus_map[0].astype(
                              np.int64), confidence, tuple(paths),
                          depth=None if result.depth is None else result.depth[0],
                          metadata=metadata, focus_channel=focus_channel)
