"""Network speed: the straightforward single-pass implementation against the fast path.

Usage: .venv/bin/python benchmarks/network_speed.py [--layers 8] [--size 1024] [--width W]
       [--repeat 3] [--checkpoint PATH] [--device cpu|cuda] [--out docs/network_speed.md]

Every variant runs in its own process (so peak memory is its own) on the same weights and the
same stack, ``--repeat`` times. The fast paths' processes keep freed memory for reuse, as the
command line's do (``stackmff.runtime.allocator``); the reference runs in a default process
and, as ``reference-kept``, in one set up as the fast paths'. The table gives the median wall
time of the network forward (luma stack in, logits out), the ratio to the reference, and the
peak resident memory of the process. Agreement with the reference: largest logit difference
and the share of pixels with the same focus map. Also: tiled (with the image-wide global
averages of ``stackmff.model.global_means``, and without) against untiled focus maps, and the
FLOPs of a 2-layer 256x256 stack (multiply-accumulates, as the paper's 2.04 G).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import torch

VARIANTS = {
    "reference": "straightforward: whole image, nn.MultiheadAttention over (b h w) sequences",
    "reference-kept": "the same, in a process that keeps freed memory as the command line's",
    "fast-fp32": "fast path, fp32, one tile",
    "fast-fp32-torch": "fast path, fp32, one tile, attention in PyTorch instead of the C kernel",
    "fast-fp32-interpolate": "fast path, fp32, one tile, coarse branches upsampled by "
                             "PyTorch's interpolate instead of the C kernel",
    "fast-bf16": "fast path, bf16 autocast for the per-layer network, one tile",
    "tiled-fp32": "fast path, fp32, 512 px tiles + 128 px margin, image-wide global averages",
    "tiled-local-fp32": "fast path, fp32, 512 px tiles + 128 px margin, tile-local global averages",
}
TILED = ("tiled-fp32", "tiled-local-fp32")


def make_stack(layers: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A textured scene with a smooth random depth, blurred per layer by depth distance."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.float32)
    for scale in (1, 4, 16):
        noise = rng.random((height // scale, width // scale)).astype(np.float32)
        image += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) / scale
    image = (image - image.min()) / np.ptp(image)
    depth = cv2.resize(rng.random((6, 6)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    depth = (depth - depth.min()) / np.ptp(depth) * (layers - 1)
    stack = np.empty((layers, height, width), np.float32)
    blurred = [image] + [cv2.GaussianBlur(image, (0, 0), 1.2 * d) for d in range(1, layers)]
    for k in range(layers):
        distance = np.abs(depth - k)
        low = np.floor(distance).astype(int)
        frac = distance - low
        high = np.minimum(low + 1, layers - 1)
        stack[k] = (np.choose(low, blurred) * (1 - frac) + np.choose(high, blurred) * frac)
    return stack


def load_model(checkpoint: str | None):
    from stackmff.model import StackMFFV3
    from stackmff.weights.checkpoint import load_checkpoint

    if checkpoint:
        return load_checkpoint(checkpoint)[0]
    torch.manual_seed(0)
    return StackMFFV3().eval()


def run_variant(args: argparse.Namespace) -> None:
    """Child process: time one variant and save its logits."""
    from stackmff.fusion import StackFuser
    from stackmff.model.reference import ReferenceStackMFFV3
    from stackmff.runtime.allocator import keep_freed_memory

    if args.variant != "reference":
        keep_freed_memory()
    if args.variant == "fast-fp32-interpolate":
        os.environ["STACKMFF_NATIVE_UPSAMPLE"] = "0"
    torch.set_flush_denormal(True)
    model = load_model(args.checkpoint)
    stack = np.load(args.stack)
    times = []
    for _ in range(args.repeat):
        if args.device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        if args.variant.startswith("reference"):
            with torch.inference_mode():
                x = torch.from_numpy(stack)[None, :, None].to(args.device)
                logits = ReferenceStackMFFV3(model.to(args.device))(x).logits[0]
        else:
            tile = 512 if args.variant in TILED else None
            precision = "bf16" if args.variant == "fast-bf16" else "fp32"
            if args.device == "cuda" and precision == "bf16":
                precision = "fp16"
            fuser = StackFuser(model, device=args.device, tile=tile, margin=128,
                               precision=precision,
                               global_means=args.variant != "tiled-local-fp32",
                               native=args.variant != "fast-fp32-torch")
            if tile is None:
                logits = fuser.logits(stack)
            else:
                logits = torch.from_numpy(np.eye(stack.shape[0], dtype=np.float32)[
                    fuser.fuse(stack).focus_map].transpose(2, 0, 1))
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    np.save(args.logits, logits.float().cpu().numpy())
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    if args.device == "cuda":
        peak_gb = torch.cuda.max_memory_allocated() / 1e9
    print(json.dumps({"times": times, "peak_gb": peak_gb}))


def flops_2x256() -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model = load_model(None)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 2, 1, 256, 256))
    return counter.get_total_flops() / 2e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--size", type=int, default=1024, help="height (and width)")
    parser.add_argument("--width", type=int, help="width, if not --size")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkpoint")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--stack", help=argparse.SUPPRESS)
    parser.add_argument("--logits", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        run_variant(args)
        return

    work = Path(tempfile.mkdtemp(prefix="stackmff-bench-"))
    width = args.width or args.size
    np.save(work / "stack.npy", make_stack(args.layers, args.size, width))
    results = {}
    for variant in args.variants:
        command = [sys.executable, __file__, "--variant", variant, "--stack", str(work / "stack.npy"),
                   "--logits", str(work / f"{variant}.npy"), "--repeat", str(args.repeat),
                   "--device", args.device] + (["--checkpoint", args.checkpoint] if args.checkpoint else [])
        print(f"running {variant} ...", file=sys.stderr, flush=True)
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[variant] = json.loads(output.strip().splitlines()[-1])

    logits = {v: np.load(work / f"{v}.npy") for v in args.variants}
    base = "reference" if "reference" in logits else args.variants[0]
    base_time = float(np.median(results[base]["times"]))
    lines = [
        f"# Network speed, N={args.layers}, {width}x{args.size}, {args.device}",
        "",
        f"Date {date.today()}, machine: {platform.machine()} {platform.processor() or ''}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
        f"{', GPU ' + torch.cuda.get_device_name() if args.device == 'cuda' else ''}. Weights: "
        f"{args.checkpoint or 'random (seed 0)'}. Command: `{' '.join(sys.argv)}`.",
        "",
        "| variant | median time (s) | speed-up vs reference | peak memory (GB) | "
        "max logit diff | same focus map |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for variant in args.variants:
        median = float(np.median(results[variant]["times"]))
        if variant in TILED:
            difference = "n/a"
        else:
            difference = f"{np.abs(logits[variant] - logits[base]).max():.2e}"
        same = np.mean(logits[variant].argmax(0) == logits[base].argmax(0))
        lines.append(f"| {VARIANTS[variant]} | {median:.2f} | {base_time / median:.1f}x | "
                     f"{results[variant]['peak_gb']:.2f} | {difference} | {100 * same:.2f}% |")
    for variant in TILED:
        if variant in logits and "fast-fp32" in logits:
            same = np.mean(logits[variant].argmax(0) == logits["fast-fp32"].argmax(0))
            lines += ["", f"Tiled ({VARIANTS[variant].split(', ', 2)[2]}) against untiled fast "
                          f"path: {100 * same:.2f}% of pixels have the same focus map."]
    lines += ["", f"Multiply-accumulates of a 2-layer 256x256 stack (torch.utils.flop_counter, "
                  f"convolutions and matrix products): {flops_2x256():.2f} G (paper: 2.04 G)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
