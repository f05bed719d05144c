"""The ``v3+`` head's inference pass: the function of :class:`RefineHead`, with fewer
multiply-accumulates, in the layout the CPU's convolutions run fastest in, on the worker
threads.

Why: every convolution after the first reads ``[h, max of h over the layers]``. Split into
its two halves, the half over the maximum is the same for every layer, so it runs once per
stack instead of once per layer: 3,050 multiply-accumulates per layer and pixel instead of
5,640 for the shipped head. The maps are channels-last, the GELUs work in place, and the
focus measures (whose Gaussian windows reach 12 rows) are computed once for the window
before the convolutions (which reach 4) run strip by strip, so strips recompute few rows.
The sums run in another order, so the logits differ from ``RefineHead.forward`` by rounding
(about 1e-5). On the CPU the convolutions run in a C kernel (``native_head``) on planar maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stackmff.model.refine import RefineHead, features
from stackmff.runtime.native_head import NativeConvolution, load_kernel
from stackmff.runtime.optimise import convolution_layout
from stackmff.runtime.parallel import ParallelMap, serial_map

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
NativeSplit = tuple[NativeConvolution, NativeConvolution]   # per layer, shared with the bias
FEATURE_BYTES = 16  # per layer and pixel: the head's four input maps, kept for the window
STRIP_BYTES = 110  # per layer and pixel of a strip of the convolutions, at their peak
STRIP_BUDGET = 2**26  # what one worker's strip may hold
MIN_ROWS = 32


def _split(conv: torch.nn.Conv2d, width: int, layout: torch.memory_format) -> Split:
    """A convolution over ``[h, max]`` as its per-layer weight, its shared weight and bias."""
    weight = conv.weight.detach()
    return (weight[:, :width].contiguous(memory_format=layout),
            weight[:, width:].contiguous(memory_format=layout), conv.bias.detach())


class HeadInference:
    """Refined logits from ``[N, H, W]`` V3 logits and luma, for inference (the head's
    weights are read once; the head itself is left as it is)."""

    def __init__(self, head: RefineHead, device: str = "cpu") -> None:
        self.config = head.config
        self.layout = convolution_layout(device)
        self.feature_reach = head.feature_reach()
        self.convolution_reach = head.convolution_reach()
        width = head.config.width
        self.first = (head.first.weight.detach().contiguous(memory_format=self.layout),
                      head.first.bias.detach())
        self.mix = _split(head.mix, width, self.layout)
        self.wide = [(_split(conv, width, self.layout), conv.dilation[0]) for conv in head.wide]
        self.out = _split(head.out, width, self.layout)
        self.scale = float(head.log_scale.detach().exp())
        kernel = load_kernel(width) if torch.device(device).type == "cpu" else None
        self.native = None if kernel is None else _kernel_calls(head, kernel)
        if self.native is not None:
            self.layout = torch.contiguous_format

    @torch.inference_mode()
    def __call__(self, logits: torch.Tensor, grey: torch.Tensor,
                 parallel: ParallelMap = serial_map, workers: int = 1,
                 rows: int | None = None) -> torch.Tensor:
        """``parallel`` maps the strips over ``workers`` threads; ``rows``: the strips'
        height (default: within the memory budget, and at least two strips per worker)."""
        n, height, width = logits.shape
        rows = rows or max(MIN_ROWS, min(STRIP_BUDGET // (n * width * STRIP_BYTES),
                                         -(-height // (2 * workers))))
        x = torch.empty((n, 4, height, width), device=logits.device).contiguous(
            memory_format=self.layout)
        refined = torch.empty_like(logits)

        def in_strips(function, reach: int) -> None:
            def strip(start: int) -> None:
                stop = min(start + rows, height)
                top, bottom = max(start - reach, 0), min(stop + reach, height)
                function(slice(top, bottom), slice(start - top, stop - top), slice(start, stop))
            parallel(strip, range(0, height, rows))

        def measure(window: slice, inner: slice, out: slice) -> None:
            x[:, :, out] = features(logits[:, window], grey[:, window], self.config)[:, :, inner]

        def convolve(window: slice, inner: slice, out: slice) -> None:
            refined[:, out] = self.convolutions(x[:, :, window])[:, inner]

        in_strips(measure, self.feature_reach)
        in_strips(convolve, self.convolution_reach)
        return refined

    def convolutions(self, x: torch.Tensor) -> torch.Tensor:
        """The head's convolutions on its ``[N, 4, h, w]`` input maps."""
        if self.native is not None:
            return self._native_convolutions(x)
        h = torch.ops.aten.gelu_(F.conv2d(_pad(x, 1), *self.first))
        h = torch.ops.aten.gelu_(self._with_max(h, self.mix, 1))
        for split, dilation in self.wide:
            h += torch.ops.aten.gelu_(self._with_max(h, split, dilation))
        correction = self._with_max(h, self.out, 0)[:, 0]
        return correction.add_(x[:, 0], alpha=self.scale)

    def _native_convolutions(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`convolutions` through the C kernel, on planar maps; each convolution hands
        the next its maximum over the layers."""
        first, mix, wide, out = self.native
        x = x.contiguous()
        h, peak = first(x, with_max=True)
        h, peak = _native_with_max(h, peak, mix, with_max=True)
        for split in wide:
            h, peak = _native_with_max(h, peak, split, residual=h, with_max=True)
        return _native_with_max(h, peak, out)[:, 0].add_(x[:, 0], alpha=self.scale)

    @staticmethod
    def _with_max(h: torch.Tensor, split: Split, pad: int) -> torch.Tensor:
        """``conv(cat([h, max over layers of h]))`` with replicate padding ``pad``, the
        maximum's half once."""
        each, shared, bias = split
        dilation = max(pad, 1)
        y = F.conv2d(_pad(h, pad), each, dilation=dilation)
        y += F.conv2d(_pad(_layer_max(h), pad), shared, bias, dilation=dilation)
        return y


def _kernel_calls(head: RefineHead, kernel) -> tuple:
    """The head's convolutions as kernel calls: the first, then ``[h, max]`` ones split in
    their per-layer and shared halves."""
    width = head.config.width

    def split(conv: torch.nn.Conv2d, gelu: bool) -> NativeSplit:
        weight, dilation = conv.weight.detach(), conv.dilation[0]
        return (NativeConvolution(kernel, weight[:, :width], None, dilation, gelu),
                NativeConvolution(kernel, weight[:, width:], conv.bias, dilation))

    first = NativeConvolution(kernel, head.first.weight, head.first.bias, gelu=True)
    return (first, split(head.mix, True), [split(conv, True) for conv in head.wide],
            split(head.out, False))


def _native_with_max(h: torch.Tensor, peak: torch.Tensor, split: NativeSplit,
                     residual: torch.Tensor | None = None, with_max: bool = False):
    """``act(conv(cat([h, peak]))) + residual``, ``peak`` being ``h``'s maximum over the
    layers: its half once."""
    each, shared = split
    return each(h, base=shared(peak), residual=residual, with_max=with_max)


def _layer_max(h: torch.Tensor) -> torch.Tensor:
    """``h.amax(dim=0, keepdim=True)`` as elementwise maxima (a reduction over the first
    axis of a channels-last map is several times slower)."""
    best = h[:1].clone()
    for k in range(1, h.shape[0]):
        torch.maximum(best, h[k:k + 1], out=best)
    return best


def _pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """``F.pad(x, (pad,) * 4, mode="replicate")``, the same values, in the input's layout:
    PyTorch's own replicate padding of a channels-last map took a fifth of the head's time,
    this takes half of that."""
    if not pad:
        return x
    n, c, height, width = x.shape
    out = torch.empty((n, c, height + 2 * pad, width + 2 * pad), dtype=x.dtype,
                      device=x.device).contiguous(memory_format=_layout(x))
    rows, cols = slice(pad, pad + height), slice(pad, pad + width)
    out[:, :, rows, cols] = x
    out[:, :, rows, :pad] = x[:, :, :, :1]
    out[:, :, rows, pad + width:] = x[:, :, :, -1:]
    out[:, :, :pad] = out[:, :, pad:pad + 1]
    out[:, :, pad + height:] = out[:, :, pad + height - 1:pad + height]
    return out


def _layout(x: torch.Tensor) -> torch.memory_format:
    return (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous() else torch.contiguous_format)
