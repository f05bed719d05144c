"""The public entry points: prepare a method, fuse a stack, save what it produced, and the
whole file-to-file run that ``stackmff fuse`` is (:mod:`stackmff.pipeline`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io import Stack, write_files_atomically
from stackmff.methods import Fuser, get_method, list_methods
from stackmff.outputs import OutputPlan, Target
from stackmff.pipeline import (
    DEFAULT_METHOD,
    FuseReport,
    check_halo,
    check_method,
    fuse_array,
    fuse_files,
    prepare_method,
    stack_products,
    with_halo,
)
from stackmff.result import FusionResult

__all__ = ["DEFAULT_METHOD", "FuseReport", "check_method", "fuse_files", "fuse_stack",
           "method_names", "prepare_method", "save_result"]


def method_names() -> list[str]:
    """Every method ``fuse_stack`` accepts."""
    return [m.name for m in list_methods()]


def fuse_stack(stack, method: str = DEFAULT_METHOD, *, fuser: Fuser | None = None,
               axes: str | None = None, focus_channel: int | str | None = None,
               metadata=None, halo: str | None = None, prefer: str | None = None,
               **options):
    """Fuse a focus stack into one all-in-focus image.

    Args:
        stack: a :class:`Stack` from :func:`load_stack`, or a float array
            ``(L, H, W[, 3])`` in [0, 1]: numpy, or Dask (fused block by block, each with
            ``margin`` pixels of context, on the active Dask client if there is one). Or a
            microscopy array with named axes (numpy, Dask or an xarray ``DataArray``): see
            ``axes``.
        axes: the letters of a microscopy array's axes, e.g. ``"TCZYX"`` (an xarray
            ``DataArray`` names its own). Z is the focus axis; each time point is a stack,
            fused in the array's dtype; the result is a
            :class:`stackmff.result.MicroscopyResult` (fused ``TCYX``, focus map,
            confidence and heights per T, and the metadata).
        focus_channel: the channel that decides the focus (index, name or ``"mean"``;
            default: the mean for several channels); every channel is taken from the layers
            it chose. Microscopy arrays only.
        metadata: a :class:`stackmff.microscopy.Metadata` (physical sizes, Z origin,
            channel names) for a numpy or Dask array; an xarray ``DataArray`` gives its own.
        method: ``"v3"`` (the network) or a classical method (see :func:`method_names`).
        fuser: a fuser from :func:`prepare_method`, to reuse across stacks (then ``method``
            and ``options`` are not used).
        halo: ``"near-to-far"`` or ``"far-to-near"`` (how the stack runs) to limit halos
            beside near objects (:mod:`stackmff.retouch.halo`), for methods that select
            layers: a step after the method, not one of its options.
        prefer: ``"near"`` or ``"far"``: where several layers are nearly as sharp, take the
            nearest or the farthest (:mod:`stackmff.retouch.ties`); a step after the method,
            for methods that select layers (stacks of images, not named-axis arrays).
        **options: the method's options; ``v3`` takes ``checkpoint`` (default: the shipped
            model), ``device``, ``tile``, ``margin``, ``precision``, ``global_means``,
            ``native``, ``blend``, ``blend_sigma`` and ``blend_scales`` (see
            :mod:`stackmff.fusion.blend`). The classical methods take none.

    Returns:
        A :class:`FusionResult` with the fused image (float32, [0, 1]) and, where the method
        has them, the focus map and confidence (for a microscopy array, see ``axes``).
    """
    if prefer is not None and (axes is not None or _module(stack) in ("xarray", "dask")):
        raise StackError("prefer applies to a stack of images (numpy), not to arrays with "
                         "named axes or Dask arrays")
    if axes is not None or _module(stack) == "xarray":
        return fuse_array(stack, axes, method, fuser, focus_channel, metadata, options, halo)
    if focus_channel is not None or metadata is not None:
        raise StackError("focus_channel and metadata apply to arrays with named axes (axes=)")
    if fuser is None and (halo is not None or prefer is not None):
        check_halo(halo, check_method(method, **options), options, prefer)
    if _is_dask_array(stack):
        return _fuse_dask(stack, method, fuser, options, halo)
    layers = stack.layers if isinstance(stack, Stack) else np.asarray(stack)
    if fuser is None:
        fuser = prepare_method(method, **options)
    return with_halo(fuser, halo, prefer)(layers)


def _module(value) -> str:
    return type(value).__module__.split(".")[0]


def _is_dask_array(stack) -> bool:
    return _module(stack) == "dask" and hasattr(stack, "chunks")


def _fuse_dask(array, method: str, fuser: Fuser | None, options: dict,
               halo: str | None = None) -> FusionResult:
    """A Dask array is fused block by block with ``margin`` of context (the network's tile
    margin; the same context for the classical methods): see
    :mod:`stackmff.fusion.dask_tiles`."""
    from stackmff.fusion.dask_tiles import fuse_dask_array
    from stackmff.methods import all_options

    margin = options.get("margin", all_options().get("margin").default)
    entry = get_method(method)
    copies = entry.copies_pixels(**options)
    if fuser is None:
        if "tile" in entry.options:  # each block in one pass: the blocks are the tiles
            options = {**options, "tile": None}
        fuser = prepare_method(method, **options)
    return fuse_dask_array(array, with_halo(fuser, halo), margin, method, copies)


def save_result(result: FusionResult, stack: Stack, output: str | Path,
                focus_map: str | Path | None = None,
                confidence: str | Path | None = None) -> list[Path]:
    """Write the fused image in the stack's bit depth, and optionally its maps (named by
    :mod:`stackmff.outputs`: the focus-map picture, its raw indices, the confidence).

    Nothing is written if any output is one of the stack's input files, or if the method
    has no focus map / confidence and one was asked for. All files appear together
    (temporary files, then renames).

    Returns:
        The paths written.
    """
    plan = OutputPlan.of(output, focus_map, confidence)
    plan.check(Target(inputs=tuple(stack.paths)))
    files = plan.encode(stack_products(result, stack))
    write_files_atomically(files)
    return list(files)
