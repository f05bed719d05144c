"""Fuse stacks with the StackMFF V3 network: the model is loaded once, stacks go through it
tile by tile.

Luma goes to the network; the focus map (argmax of the per-pixel softmax over layers) then
gathers the original colour, full-bit-depth pixels, so every output pixel is an input pixel.
Sizes that are not multiples of 32 are padded by reflection and cropped back: no resize.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from stackmff.errors import StackError
from stackmff.fusion.blend import Blend, decide_tile, peak_position
from stackmff.fusion.image_means import ImageMeans
from stackmff.fusion.network_method import OPTIONS
from stackmff.fusion.tiling import DEFAULT_MARGIN, Tile, plan_budget_tiles, plan_tiles
from stackmff.io.pixels import to_float
from stackmff.model import StackMFFV3, StackOutput
from stackmff.model.attention import PIXELS_PER_CHUNK
from stackmff.model.global_means import using
from stackmff.progress import progress
from stackmff.result import FusionResult
from stackmff.runtime.allocator import release_free_memory
from stackmff.runtime.native_attention import native_logits
from stackmff.runtime.optimise import convolution_layout, optimise_for_inference
from stackmff.runtime.parallel import thread_map
from stackmff.stack_ops import check_layers, gather, window_luma

ALIGN = 32  # the encoder's total stride
# What the stack, the image-wide results and one tile window's maps and worker networks may
# hold together (at least MIN_WINDOW_BYTES for the window, however large the stack):
# 20 x 4000 x 3000 stays within 2.6 GB for the whole process, 30 x 6000 x 4000 within 4 GB,
# and a 3 MP stack of up to 16 layers runs in one pass.
BUDGET_BYTES = 2_100_000_000
MIN_WINDOW_BYTES = 1_000_000_000
RESULT_BYTES = 10  # per image pixel: the focus map, its confidence and sub-layer depth
LAYER_BYTES = 32  # per layer and window pixel: luma, input, logits, probabilities, 1/4 maps
NETWORK_BYTES = 120  # per worker and window pixel: the per-layer network's working memory
STRIP_BYTES = 2**24  # the [N, C0, rows, W] volume of one strip of a tile (see logits)
MIN_STRIP_ROWS = 16  # each strip recomputes a few rows either side
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def window_budget(n_layers: int, workers: int, held_bytes: int = 0,
                  after_bytes: int = 0) -> int:
    """Pixels of the largest tile window whose maps and worker networks fit in the budget
    beside what the whole fusion holds (``held_bytes``: the stack, the fused image and the
    maps), so memory stays bounded however many layers the stack has (measured: the
    per-layer network's pass of one 1024 x 1024 layer, 100 MB; 20 x 4000 x 3000, about 850
    bytes per window pixel in all). ``after_bytes`` per layer and
    pixel: what a step after the network holds once the workers' networks are freed (the
    v3+ head's input maps)."""
    per_pixel = n_layers * LAYER_BYTES + max(workers * NETWORK_BYTES, n_layers * after_bytes)
    return int(max(MIN_WINDOW_BYTES, BUDGET_BYTES - held_bytes) / per_pixel)


class StackFuser:
    """A loaded network ready to fuse stacks of any size and any number of layers.

    Args:
        model: the network (put in eval mode here).
        device: ``"cpu"`` or ``"cuda"``.
        tile: core tile side in pixels; ``"auto"``: the whole image in one pass where its
            maps fit the memory budget for the stack's N (:func:`window_budget`), else the
            tiles, of any shape, that fit it with the least work
            (:func:`stackmff.fusion.tiling.plan_budget_tiles`); ``None``: always one pass.
        margin: context added around each tile core.
        precision: ``"fp32"``, or ``"bf16"``/``"fp16"`` autocast for the per-layer network
            (the cross-layer attention stays in fp32).
        workers: CPU threads, each taking whole layers and pixel chunks on one core
            (default: torch's thread count); see :mod:`stackmff.runtime.parallel`.
        global_means: with several tiles, a first pass over them so that the network's
            global averages see the whole image, as untiled (see
            :mod:`stackmff.model.global_means`); ``False`` skips it (faster, and the focus
            map changes at near-ties).
        native: on CPU, the cross-layer attention runs as the compiled kernel of
            :mod:`stackmff.runtime.native_attention` where it can be built (``False``: always
            the PyTorch path).
        blend: how the probabilities become the image (:mod:`stackmff.fusion.blend`);
            default the paper's hard gather.
        copy_model: ``False`` rewrites ``model`` itself for inference instead of a copy of it
            (for a model loaded only for this fuser: saves copying its weights).
    """

    name = "v3"  # the method named in results and progress
    after_bytes = 0  # what a step after the network holds per layer and pixel

    def __init__(self, model: StackMFFV3, device: str = "cpu", tile: int | str | None = "auto",
                 margin: int = DEFAULT_MARGIN, precision: str = "fp32",
                 workers: int | None = None, global_means: bool = True,
                 native: bool = True, blend: Blend | None = None,
                 copy_model: bool = True) -> None:
        # the same check, and message, as the method's options get from the registry
        OPTIONS.check_values(device=device, tile=tile, margin=margin, precision=precision,
                             global_means=global_means, native=native)
        if device == "cuda" and not torch.cuda.is_available():
            raise StackError("--device cuda asked for, but no CUDA device is available")
        self.model = optimise_for_inference(model, device, in_place=not copy_model,
                                            onednn=precision == "fp32")
        self.device, self.tile, self.margin, self.precision = device, tile, margin, precision
        self.global_means, self.native = global_means, native
        self.blend = blend or Blend()
        self.workers = 1 if device == "cuda" else (workers or torch.get_num_threads())
        # a GPU wants few large launches; a CPU core wants work that stays in its cache
        self.layers_per_batch, self.chunk = ((2, 1 << 16) if device == "cuda"
                                             else (1, PIXELS_PER_CHUNK))

    def __call__(self, layers: np.ndarray) -> FusionResult:
        """A prepared method is a fuser: see :func:`stackmff.prepare_method`."""
        return self.fuse(layers)

    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device, dtype=dtype)

    def _network_input(self, grey: np.ndarray) -> torch.Tensor:
        """Luma ``(N, H, W)`` as the network's ``[1, N, 1, H', W']`` input, padded by reflection
        to multiples of 32."""
        if self.device == "cpu":
            # denormals make CPU convolutions crawl; set in the thread that starts the
            # workers (they inherit it), which need not be the one that made this fuser
            torch.set_flush_denormal(True)
        x = torch.from_numpy(np.ascontiguousarray(grey, np.float32)).to(self.device)
        h, w = x.shape[1:]
        pad_h, pad_w = (-h) % ALIGN, (-w) % ALIGN
        if pad_h or pad_w:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x[None], (0, pad_w, 0, pad_h), mode=mode)[0]
        return x[:, None].contiguous(memory_format=convolution_layout(self.device))[None]

    @torch.inference_mode()
    def logits(self, grey: np.ndarray, means: ImageMeans | None = None) -> torch.Tensor:
        """Network logits ``[N, H, W]`` for a luma stack ``(N, H, W)`` in one pass (one tile);
        ``means`` replaces the global averages of each layer by the whole image's.

        The per-layer network runs layer by layer up to its 1/4-resolution maps; the rest
        (upsampling, head, cross-layer attention) runs strip by strip of rows, so the
        full-resolution volume ``[N, C0, H, W]`` is never whole: the same logits, bit for
        bit, in a fraction of the memory."""
        x = self._network_input(grey)
        n, (height, width) = x.shape[1], x.shape[-2:]
        context = None if means is None else (lambda start: using(means.replay(start)))
        rows = self._strip_rows(n, height, width)
        with thread_map(self.workers) as parallel:
            quarter = self.model.estimate_quarter(
                x, self.layers_per_batch, partial(parallel, context=self._autocast), context,
                dtype=PRECISION_DTYPES[self.precision],
                memory_format=convolution_layout(self.device))
            # only now: the per-layer networks' working memory, the peak, is free again
            logits = torch.empty((n, height, width), device=self.device)

            def strip(start: int) -> None:
                stop = min(start + rows, height)
                volume = self.model.focus.decoder.full_resolution(
                    quarter, (height, width), (start, stop))
                logits[:, start:stop] = self._attend(volume[None])[0]

            parallel(strip, range(0, height, rows), context=self._autocast)
        return logits[:, :grey.shape[1], :grey.shape[2]]

    def _strip_rows(self, n_layers: int, height: int, width: int) -> int:
        """Rows per strip: on a GPU the whole image (few large launches); on a CPU a strip
        whose volume stays near STRIP_BYTES, in at least two strips per worker thread."""
        if self.device == "cuda":
            return height
        budget = STRIP_BYTES // (n_layers * self.model.config.decoder_width * width * 4)
        balanced = -(-height // (2 * self.workers))
        return max(MIN_STRIP_ROWS, min(budget, balanced))

    def _attend(self, volume: torch.Tensor) -> torch.Tensor:
        """The cross-layer attention and channel maximum of a ``[1, N, C0, h, w]`` volume:
        the C kernel where it applies (it reads a bf16 network's output as it is)."""
        logits = (native_logits(self.model.attention, volume, self.chunk)
                  if self.native else None)
        if logits is None:
            logits = self.model.attention.logits(volume.float(), chunk=self.chunk)
        return logits

    @torch.inference_mode()
    def image_means(self, layers: np.ndarray, tiles: list[Tile]) -> ImageMeans:
        """First pass over the tiles: each layer's global-average inputs summed over the tile
        cores, so the second pass can give every tile the whole image's means. The tiles go
        through with their margins, so the sums see what one pass sees (without them, small
        tiles would sum border effects)."""
        n = layers.shape[0]
        means = ImageMeans(n)
        with thread_map(self.workers) as parallel:
            for tile in progress(tiles, desc="v3 image means", total=len(tiles)):
                y0, y1, x0, x1 = tile.window
                x = self._network_input(window_luma(layers, slice(y0, y1), slice(x0, x1)))[0]
                rows, cols = tile.core_in_window()
                core = (rows.start, rows.stop, cols.start, cols.stop)

                def record(start: int, x=x, core=core) -> None:
                    with using(means.recorder(start, core, x.shape[-2:])):
                        self.model.focus.run_global_averages(x[start:start + self.layers_per_batch])

                parallel(record, range(0, n, self.layers_per_batch), context=self._autocast)
                release_free_memory()
        return means

    def fuse(self, layers: np.ndarray) -> FusionResult:
        """Fuse ``(N, H, W[, 3])`` layers: float32 in [0, 1], or uint8/uint16 (then the fused
        image is in that type too)."""
        layers = check_layers(layers, keep_integers=True)  # converted a tile at a time
        n, height, width = layers.shape[:3]
        focus_map = np.empty((height, width), np.uint16)
        confidence = np.empty((height, width), np.float32)
        depth = np.empty((height, width), np.float32)
        if self.tile == "auto":
            held = layers.nbytes + height * width * (RESULT_BYTES + layers.itemsize
                                                      * int(np.prod(layers.shape[3:])))
            budget = window_budget(n, self.workers, held, self.after_bytes)
            tiles = plan_budget_tiles(height, width, budget, self.margin)
        else:
            tiles = plan_tiles(height, width, self.tile, self.margin)
        means = self.image_means(layers, tiles) if len(tiles) > 1 and self.global_means else None
        fused = None if self.blend.mode == "hard" else np.empty(layers.shape[1:], np.float32)
        for tile in progress(tiles, desc=self.name, total=len(tiles)):
            y0, y1, x0, x1 = tile.window
            grey = window_luma(layers, slice(y0, y1), slice(x0, x1))
            if not self.blend.plain_gather:
                self._blend_tile(tile, grey, to_float(layers[:, y0:y1, x0:x1]), means,
                                 (focus_map, confidence, fused, depth))
                continue
            output = StackOutput(self.logits(grey, means)[None])
            if self.model.config.head == "depth_regression":  # V3*: expectation over layers
                winner = output.depth_focus_map()[0]
            else:
                winner = output.focus_map()[0]
            p = output.probabilities()[0]
            best = p.gather(0, winner[None])[0]
            rows, cols = tile.core_in_window()
            cy0, cy1, cx0, cx1 = tile.core
            focus_map[cy0:cy1, cx0:cx1] = winner[rows, cols].cpu().numpy()
            confidence[cy0:cy1, cx0:cx1] = best[rows, cols].cpu().numpy()
            depth[cy0:cy1, cx0:cx1] = peak_position(p, winner)[rows, cols].float().cpu().numpy()
            del output, winner, best, p
            release_free_memory()
        return FusionResult(fused=gather(layers, focus_map) if fused is None else fused,
                            focus_map=focus_map, confidence=confidence, method=self.name,
                            depth=depth)

    def _blend_tile(self, tile: Tile, grey: np.ndarray, window: np.ndarray,
                    means: ImageMeans | None, outputs: tuple) -> None:
        """Soft, band or multi-scale: the tile's core decided by :mod:`stackmff.fusion.blend`
        (the extra scales take each tile's own global averages)."""
        decision = decide_tile(
            self.blend, lambda g, full: self.logits(g, means if full else None), grey, window,
            tile.core_in_window(), self.model.config.head == "depth_regression")
        cy0, cy1, cx0, cx1 = tile.core
        focus_map, confidence, fused, depth = outputs
        focus_map[cy0:cy1, cx0:cx1] = decision.focus_map
        confidence[cy0:cy1, cx0:cx1] = decision.confidence
        depth[cy0:cy1, cx0:cx1] = decision.depth
        if fused is not None:
            fused[cy0:cy1, cx0:cx1] = decision.fused
        release_free_memory()
