"""The network's blend modes against openfocus and depthmap on the held-out validation stacks,
in short runs whose rows add up to one report.

Usage: .venv/bin/python benchmarks/blend_screen.py --rows ROWS.jsonl
           [--suites validation ...] [--sizes 2 5 9 16 24]
       .venv/bin/python benchmarks/blend_screen.py --rows ROWS.jsonl --report docs/validation.md
           --command "..."

The first form fuses the chosen validation stacks (the same renderer, seeds and 8-bit files as
`stackmff bench --suite validation`) with the shipped network (or ``--checkpoint``'s weights;
give such a run its own ROWS file) in each blend, with ``v3+`` (the network and its
refinement head, ``--head`` or the shipped one) in each blend, and with
depthmap, all in this process, and with openfocus (its defaults, and without exposure
matching) as its own process on the stack's files; it appends one JSON row per stack and
method to ROWS (``--methods`` picks the rows), and prints each blend's share of exact pixels
(equal to the gather by its focus map). The second form writes the benchmark report from all rows gathered. Times are not
recorded (in-process and whole-process times do not compare): `stackmff bench` measures them.
openfocus is found as `stackmff bench` finds it (see scripts/setup_bench.sh).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from stackmff.api import fuse_stack, prepare_method
from stackmff.evaluation.report import write_report
from stackmff.evaluation.runner import OPENFOCUS_ROWS, RunResult, openfocus_program, read_rows
from stackmff.evaluation.suites import (
    VALIDATION_SIZES,
    held_out_scenes,
    interference_variants,
    order_variants,
    validation_size_stacks,
)
from stackmff.fusion.blend import exact_fraction
from stackmff.fusion.network_method import prepare_refined
from stackmff.io import read_pages, write_image
from stackmff.io.pixels import from_float, to_float
from stackmff.metrics import focus_map_accuracy, psnr, psnr_colour, ssim

BLENDS = {"v3": {}, "v3-soft": {"blend": "soft"}, "v3-band": {"blend": "band"},
          "v3-soft2": {"blend": "soft", "blend_scales": (1.0, 0.75)}}
REFINED = {"v3+": {}, "v3+-soft": {"blend": "soft"}, "v3+-band": {"blend": "band"}}
PEERS = ("openfocus", "openfocus-nomatch")
METHODS = [*REFINED, *BLENDS, "depthmap", *PEERS]


def _row(stack, method: str, fused: np.ndarray, focus_map: np.ndarray | None) -> RunResult:
    fused = to_float(from_float(fused, stack.dtype))   # as written at the stack's bit depth
    row = RunResult(stack.suite, stack.variant, stack.name, method, len(stack.layers),
                    float("nan"), float("nan"), psnr(fused, stack.truth),
                    ssim(fused, stack.truth), psnr_colour(fused, stack.truth))
    if focus_map is not None and stack.focus_map is not None:
        accuracy = focus_map_accuracy(focus_map, stack.focus_map)
        row.map_exact, row.map_within_one = accuracy.exact, accuracy.within_one
    return row


def _openfocus(program: str, flags: tuple[str, ...], layers: np.ndarray, stack) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="blend-screen-") as work:
        folder = Path(work) / "layers"
        folder.mkdir()
        for k, layer in enumerate(layers):
            write_image(from_float(layer, stack.dtype), folder / f"layer_{k:02d}.png")
        out = Path(work) / "fused.png"
        subprocess.run([program, "--cpu", *flags, "-i", str(folder), "-o", str(out)],
                       check=True, capture_output=True)
        fused = to_float(read_pages(out)[0])
    return fused[..., :3].mean(axis=-1) if fused.ndim == 3 and layers.ndim == 3 else fused


def stacks(suites: list[str], sizes: list[int]):
    """The stacks of ``stackmff bench --suite validation ...``, only those chosen rendered."""
    scenes = held_out_scenes()
    if "validation" in suites:
        yield from validation_size_stacks(scenes, sizes)
    tested = list(scenes.items())[::4][:3]
    if "validation-order" in suites:
        for name, scene in tested:
            yield from order_variants("validation-order", name, scene, randoms=3)
    if "validation-interference" in suites:
        for name, scene in tested:
            yield from interference_variants("validation-interference", name, scene,
                                             (0, 3, 7, 14))


def screen(suites: list[str], sizes: list[int], rows_path: Path,
           checkpoint: str | None = None, methods: list[str] = METHODS,
           head: str | None = None) -> None:
    program = openfocus_program()
    if program is None and set(PEERS) & set(methods):
        raise SystemExit("openfocus not found: run scripts/setup_bench.sh or set "
                         "STACKMFF_OPENFOCUS")
    weights = {} if checkpoint is None else {"checkpoint": checkpoint}
    fusers = {name: prepare_method("v3", **options, **weights)
              for name, options in BLENDS.items() if name in methods}
    fusers.update({name: prepare_refined(head=head, **options, **weights)
                   for name, options in REFINED.items() if name in methods})
    exact = defaultdict(list)
    with rows_path.open("a") as out:
        for stack in stacks(suites, sizes):
            layers = np.stack([to_float(from_float(layer, stack.dtype))
                               for layer in stack.layers])
            rows = []
            for name, fuser in fusers.items():
                result = fuser(layers)
                rows.append(_row(stack, name, result.fused, result.focus_map))
                exact[name].append(exact_fraction(result.fused, layers, result.focus_map))
            if "depthmap" in methods:
                result = fuse_stack(layers, "depthmap")
                rows.append(_row(stack, "depthmap", result.fused, result.focus_map))
            for name in (p for p in PEERS if p in methods):
                rows.append(_row(stack, name, _openfocus(program, OPENFOCUS_ROWS[name], layers,
                                                         stack), None))
            out.writelines(row.json_line() for row in rows)
            out.flush()
            print(stack.suite, stack.variant, stack.name,
                  "  ".join(f"{r.method} {r.psnr:.3f}" for r in rows), flush=True)
    for name, values in exact.items():
        print(f"{name}: exact pixels {np.mean(values):.3f} on average, "
              f"{np.min(values):.3f} at least")


NOTE = ("Made in short runs by benchmarks/blend_screen.py: ours fused in one process, "
        "openfocus as its own process on the same 8-bit files, no times recorded "
        "(`stackmff bench` measures whole processes: [benchmarks.md](benchmarks.md)). "
        "Q^AB/F and enfuse were not run.")


def report(rows_path: Path, out: Path, command: str, note: str = "") -> None:
    rows = read_rows(rows_path)
    order = {"validation": 0, "validation-order": 1, "validation-interference": 2}
    rows.sort(key=lambda r: order[r.suite])   # stable: each suite's rows in run order
    present = {r.method for r in rows}
    network = "v3+" if "v3+" in present else "v3"
    write_report(rows, [m for m in METHODS if m in present], out, command, [],
                 " ".join(filter(None, (NOTE, note))), network)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, required=True)
    parser.add_argument("--suites", nargs="+", default=["validation"],
                        choices=("validation", "validation-order", "validation-interference"))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(VALIDATION_SIZES),
                        choices=VALIDATION_SIZES)
    parser.add_argument("--report", type=Path, help="write the report from ROWS instead")
    parser.add_argument("--checkpoint", help="the network's weights (default: the shipped model)")
    parser.add_argument("--head", help="the v3+ refinement head (default: the shipped head)")
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS,
                        help="the rows to make (default: all)")
    parser.add_argument("--command", default="benchmarks/blend_screen.py")
    parser.add_argument("--note", default="", help="more to say under the report's header")
    args = parser.parse_args()
    if args.report:
        report(args.rows, args.report, args.command, args.note)
    else:
        screen(args.suites, args.sizes, args.rows, args.checkpoint, args.methods, args.head)


if __name__ == "__main__":
    main()
