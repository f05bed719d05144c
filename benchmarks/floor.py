"""The network against its arithmetic floor: the multiply-accumulates a stack needs, divided
by the rate this machine's cores reach on a large matrix product, both measured in one run.

Usage: .venv/bin/python benchmarks/floor.py [--stacks medium 3mp large photographer lytro]
       [--isa native avx2] [--methods v3 "v3 bf16" v3+] [--out docs/speed.md] [--workdir DIR]
       [--data ../shared/data] [--tag NAME]

For each instruction set (``native``; ``avx2``: PyTorch, oneDNN and MKL held to AVX2 and the
attention kernel built for ``x86-64-v3``, as on most laptops; checked below by what each
library reports it runs) a child process measures the peak: the best of five 2048^3 float32
matrix products on all cores (and bfloat16 where the CPU has it natively). Then each stack
(the JPEG stacks of ``end_to_end.py``; ``photographer``: 30 x 6000 x 4000; ``lytro``: Lytro #48
from ``--data``, 9 x 1080 x 1080) goes through one
whole `stackmff fuse` process per method, timed stage by stage inside it. The floor of a
stack is its network multiply-accumulates (counted by PyTorch's FLOP counter on the
per-layer network, the head and the attention, per pixel of the image padded to multiples
of 32, untiled: what one pass needs) over the peak; the ratio is the fuse stage's seconds
over that floor (bf16 runs over the bf16 floor). Writes the table between markers in
``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).parent))
from end_to_end import STACKS as E2E_STACKS  # noqa: E402
from end_to_end import _commit, profile, render_stack, write_page  # noqa: E402

STACKS = {**{k: v for k, v in E2E_STACKS.items() if k != "small"},
          "photographer": (30, 6000, 4000)}
# real stacks read from --data: (folder of their files, what they are)
FILES = {"lytro": ("lytro-refocus-epfl48/stack", "Lytro #48")}
ISAS = {  # what holds each library to the instruction set
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2", "STACKMFF_NATIVE_ARCH": "x86-64-v3"},
}
METHODS = {"v3": ("v3", {}), "v3 bf16": ("v3", {"precision": "bf16"}), "v3+": ("v3+", {})}
MARKER_NAME = "floor"
PEAK = """
import json, time, torch
def rate(dtype):
    a = torch.rand(2048, 2048).to(dtype); b = torch.rand(2048, 2048).to(dtype)
    torch.mm(a, b); best = 1e9
    for _ in range(5):
        t = time.perf_counter(); torch.mm(a, b); best = min(best, time.perf_counter() - t)
    return 2048 ** 3 / best
# oneDNN's own report of the ISA its convolutions run in
x = torch.rand(1, 32, 64, 64).contiguous(memory_format=torch.channels_last)
torch.nn.functional.conv2d(x, torch.rand(32, 32, 3, 3), padding=1)
bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
print(json.dumps({"fp32": rate(torch.float32), "bf16": rate(torch.bfloat16) if bf16 else None,
                  "aten": torch.backends.cpu.get_cpu_capability()}))
"""


def network_macs(layers: int, width: int, height: int, head: bool) -> float:
    """Multiply-accumulates of one untiled pass over a stack: the per-layer network (to its
    full-resolution maps), the cross-layer attention, and with ``head`` the v3+ head."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from stackmff.fusion.network_method import head_weights
    from stackmff.model import StackMFFV3
    from stackmff.runtime.refine_inference import HeadInference
    from stackmff.weights.head import load_head

    side = 128  # everything scales with the pixels: counted on 128 x 128 and scaled
    model = StackMFFV3().eval()

    def count(function, *inputs) -> float:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            function(*inputs)
        return counter.get_total_flops() / 2

    layer = torch.rand(1, 1, side, side)
    total = layers * count(model.focus, layer)
    volume = torch.rand(1, layers, model.config.decoder_width, side, side)
    total += count(lambda v: model.attention.logits(v, chunk=side * side), volume)
    if head:  # what its inference pass computes (the shared half of each layer once), on
        # its PyTorch path: the C kernel's sums are the same, but the counter does not see them
        from agreement import with_environment

        fast = with_environment("STACKMFF_NATIVE_HEAD", "0",
                                lambda: HeadInference(load_head(head_weights(None))[0]))
        grey = torch.rand(layers, side, side)
        total += count(lambda g: fast(g, g, rows=side), grey)
    pixels = (-(-height // 32) * 32) * (-(-width // 32) * 32)
    return total * pixels / side**2


def peak(isa: str) -> dict:
    env = {**os.environ, **ISAS[isa]}
    result = subprocess.run([sys.executable, "-c", PEAK], capture_output=True, text=True,
                            env=env, check=True)
    found = json.loads(result.stdout.splitlines()[-1])
    verbose = subprocess.run([sys.executable, "-c", PEAK.split("bf16 =")[0]],
                             capture_output=True, text=True, env={**env, "ONEDNN_VERBOSE": "1"})
    found["onednn"] = next((line.split("isa:", 1)[1] for line in verbose.stdout.splitlines()
                            if line.startswith("onednn_verbose") and ",isa:" in line), "?")
    return found


def markdown(rows: list[dict], peaks: dict, command: str, stacks: list[str], tag: str) -> str:
    marker = f"<!-- {MARKER_NAME} {' '.join([*stacks, tag]).strip()}: {{}} -->"
    lines = [marker.format("begin"), "",
             f"Measured {date.today()} on {platform.node() or 'this machine'} "
             f"({os.cpu_count()} cores, {platform.processor() or platform.machine()}), commit "
             f"{_commit()}, with `{command}`. One whole `stackmff fuse` process per row; "
             "floor = the stack's network multiply-accumulates (one untiled pass) / the peak "
             "measured in the same run; ratio = fuse stage / floor.", "",
             "| instruction set | peak fp32 | peak bf16 | what runs (ATen, oneDNN) |",
             "|---|---:|---:|---|"]
    for isa, p in peaks.items():
        bf16 = f"{p['bf16'] / 1e9:.0f} G/s" if p["bf16"] else "none"
        lines.append(f"| {isa} | {p['fp32'] / 1e9:.0f} G MAC/s | {bf16} | "
                     f"{p['aten']}, {p['onednn']} |")
    lines += ["", "| stack | instruction set | method | G MAC | floor | fuse stage | ratio | "
              "whole process | everything but the fuse stage | peak memory |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['stack']} | {r['isa']} | {r['method']} | {r['macs'] / 1e9:.0f} | "
                     f"{r['floor']:.2f} s | {r['fuse']:.2f} s | **{r['ratio']:.2f}** | "
                     f"{r['total']:.2f} s | {r['total'] - r['fuse']:.2f} s | {r['peak']:.2f} GB |")
    return "\n".join([*lines, "", marker.format("end")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", nargs="+", choices=[*STACKS, *FILES],
                        default=["medium", "3mp"])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--isa", nargs="+", choices=ISAS, default=list(ISAS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", type=Path, default=Path("docs/speed.md"))
    parser.add_argument("--workdir", type=Path, help="keep the rendered stacks here")
    parser.add_argument("--tag", default="", help="a name for the table's block, so that "
                        "another machine's table of the same stacks stands beside it")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="stackmff-floor-"))
    peaks = {isa: peak(isa) for isa in args.isa}
    print("peaks", peaks, flush=True)
    rows = []
    for stack in args.stacks:
        if stack in FILES:
            paths = sorted((args.data / FILES[stack][0]).glob("*.jpg"))
            if not paths:
                raise SystemExit(f"{FILES[stack][1]}: no files in {args.data / FILES[stack][0]}")
            height, width = cv2.imread(str(paths[0])).shape[:2]
            layers = len(paths)
        else:
            layers, width, height = STACKS[stack]
            folder = work / stack
            paths = sorted(folder.glob("*.jpg")) or render_stack(folder, layers, width, height)
        out = work / f"{stack}-out"
        out.mkdir(exist_ok=True)
        for isa in args.isa:
            for name in args.methods:
                method, options = METHODS[name]
                precision = options.get("precision", "fp32")
                rate = peaks[isa]["bf16" if precision == "bf16" else "fp32"]
                if rate is None:
                    continue
                macs = network_macs(layers, width, height, head=method == "v3+")
                environ = dict(os.environ)
                os.environ.update(ISAS[isa])
                try:
                    stages = profile(paths, out, method, options)
                finally:
                    os.environ.clear()
                    os.environ.update(environ)
                floor = macs / rate
                label = FILES[stack][1] + ", " if stack in FILES else ""
                rows.append({"stack": f"{label}{layers} x {width} x {height}", "isa": isa,
                             "method": name, "macs": macs, "floor": floor,
                             "fuse": stages["fuse"], "ratio": stages["fuse"] / floor,
                             "total": stages["total"], "peak": stages["peak"]})
                print(rows[-1], flush=True)
    command = "python benchmarks/floor.py " + " ".join(sys.argv[1:])
    write_page(args.out, markdown(rows, peaks, command.strip(), args.stacks, args.tag))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
