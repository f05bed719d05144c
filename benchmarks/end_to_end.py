"""Speed as the user feels it: whole `stackmff fuse` processes against enfuse, same files.

Usage: .venv/bin/python benchmarks/end_to_end.py [--repeat 3] [--large] [--out docs/speed.md]
       [--workdir DIR]

Renders colour JPEG focus stacks with a fixed seed (small 8 x 640 x 480, medium
8 x 1024 x 1024, 10 x 3 MP, and with ``--large`` 20 x 4000 x 3000), then runs enfuse and
each `stackmff fuse` variant in turn on the same files, ``--repeat`` times, each as its own
process (the large stack: once, default precision only). Wall time is the process's from start to exit; peak memory its maximum resident set
(``wait4``). Medians, and the ratio to enfuse's median in the same run. Then one profiled
process per stack and network precision: Python start, imports, and the stages the command
reports (prepare, load, fuse, write). Writes the tables into ``--out`` between markers
named by the stacks, keeping the rest of the page.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np

STACKS = {  # name: (layers, width, height)
    "small": (8, 640, 480),
    "medium": (8, 1024, 1024),
    "3mp": (10, 2048, 1536),
    "large": (20, 4000, 3000),
}
ENFUSE_FLAGS = ["--exposure-weight=0", "--saturation-weight=0", "--contrast-weight=1",
                "--hard-mask", "--contrast-window-size=9"]
VARIANTS = {  # name: stackmff fuse arguments
    "depthmap": ["-m", "depthmap"],
    "v3": ["-m", "v3"],
    "v3 bf16": ["-m", "v3", "--precision", "bf16"],
}
MARKER = "<!-- end_to_end {}: {} -->"  # each set of stacks has its own section of the page
# One process's stages, timed inside it: the imports of the command line, then the command's
# own report (fuse_files' stage times); everything else is start-up and exit.
PROFILE = """
import sys, time, json
started = time.perf_counter()
import stackmff.cli
from stackmff.runtime.allocator import keep_freed_memory
imported = time.perf_counter()
keep_freed_memory()
from stackmff.api import fuse_files
args = json.loads(sys.argv[1])
report = fuse_files(args["inputs"], args["output"], args["method"], **args["options"])
print(json.dumps({"imports": imported - started, **report.seconds,
                  "torch_loaded": "torch" in sys.modules}))
import gc; gc.freeze()  # as the command line's exit
"""


def render_stack(folder: Path, layers: int, width: int, height: int, seed: int = 0) -> list[Path]:
    """Colour texture blurred per layer by its distance to a smooth random depth (JPEG 90)."""
    rng = np.random.default_rng(seed)
    size = (width, height)
    texture = cv2.resize(rng.integers(0, 256, (height // 3, width // 3, 3), np.uint8), size,
                         interpolation=cv2.INTER_CUBIC)
    depth = cv2.resize(rng.random((5, 5)).astype(np.float32), size,
                       interpolation=cv2.INTER_CUBIC)
    depth = (depth - depth.min()) / np.ptp(depth) * (layers - 1)
    folder.mkdir(parents=True, exist_ok=True)
    blurred = [texture] + [cv2.GaussianBlur(texture, (0, 0), 1.5 * d) for d in range(1, 4)]
    paths = []
    for k in range(layers):
        distance = np.minimum(np.rint(np.abs(depth - k)).astype(int), len(blurred) - 1)
        layer = np.choose(distance[..., None], blurred)
        paths.append(folder / f"layer_{k:02d}.jpg")
        cv2.imwrite(str(paths[-1]), layer, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return paths


def run_process(command: list[str], output: list[str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak resident GB of one process, from start to exit; its last line
    of output goes to ``output`` if given."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0), stderr.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {stderr.read().decode()}")
        if output is not None:
            output.append(stdout.read().decode().splitlines()[-1])
    return wall, usage.ru_maxrss * 1024 / 1e9


def commands(paths: list[Path], out: Path, variants: list[str]) -> dict[str, list[str]]:
    stackmff = [sys.executable, "-m", "stackmff", "fuse", *map(str, paths), "-q"]
    found = {"enfuse": ["enfuse", *ENFUSE_FLAGS, "-o", str(out / "enfuse.tif"),
                        *map(str, paths)]} if shutil.which("enfuse") else {}
    for name in variants:
        arguments = VARIANTS[name]
        found[name] = [*stackmff, *arguments, "-o", str(out / f"{name.replace(' ', '_')}.png")]
    return found


def time_stack(paths: list[Path], out: Path, repeat: int,
               variants: list[str]) -> dict[str, tuple[float, float]]:
    """Median wall and peak of every command, run in turn ``repeat`` times."""
    runs: dict[str, list[tuple[float, float]]] = {}
    for _ in range(repeat):
        for name, command in commands(paths, out, variants).items():
            runs.setdefault(name, []).append(run_process(command))
    return {name: (float(np.median([w for w, _ in r])), float(np.median([m for _, m in r])))
            for name, r in runs.items()}


def profile(paths: list[Path], out: Path, method: str, options: dict) -> dict[str, float]:
    """One process: Python start, imports, the command's stages, exit; and its peak."""
    import json

    python_start, _ = run_process([sys.executable, "-c", "pass"])
    output: list[str] = []
    total, peak = run_process(
        [sys.executable, "-c", PROFILE, json.dumps({
            "inputs": [str(p) for p in paths], "output": str(out / "profile.png"),
            "method": method, "options": options})], output)
    stages = json.loads(output[0])
    torch_loaded = stages.pop("torch_loaded")
    inside = sum(stages.values())
    return {"python start": python_start, **stages,
            "exit and the rest": total - inside - python_start, "total": total,
            "torch": float(torch_loaded), "peak": peak}


def markdown(results: dict, profiles: dict, command: str) -> str:
    lines = [MARKER.format(" ".join(results), "begin"), "", f"Measured {date.today()} on {platform.node() or 'this machine'} "
             f"({os.cpu_count()} cores, {platform.processor() or platform.machine()}), commit "
             f"{_commit()}, with `{command}`. Medians of whole processes run in turn on the "
             "same files; ratio = wall time / enfuse's in the same run. `v3` is the default "
             "precision (fp32)." + (" The large stack: one run of each; its v3 run is the "
                                    "profiled one." if "large" in results else ""), ""]
    for stack, rows in results.items():
        layers, width, height = STACKS[stack]
        lines += [f"**{stack}: {layers} x {width} x {height} JPEG**", "",
                  "| command | wall | peak memory | ratio to enfuse |", "|---|---:|---:|---:|"]
        base = rows.get("enfuse", (float("nan"), 0))[0]
        for name, (wall, peak) in rows.items():
            lines.append(f"| {name} | {wall:.2f} s | {peak:.2f} GB | {wall / base:.2f} |")
        lines.append("")
    stages = ["python start", "imports", "prepare", "load", "fuse", "write", "exit and the rest",
              "total", "peak"]
    names = list(profiles)
    lines += ["Where one process's time goes (seconds, default precision; `prepare` includes "
              "importing torch and loading the weights for v3; peak in GB):", "",
              "| stage | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for stage in stages:
        lines.append(f"| {stage} | " + " | ".join(
            f"{profiles[n].get(stage, 0.0):.2f}" for n in names) + " |")
    lines.append("| torch imported | " + " | ".join(
        "yes" if profiles[n]["torch"] else "no" for n in names) + " |")
    return "\n".join([*lines, "", MARKER.format(" ".join(results), "end")])


def _commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent)
    return result.stdout.strip() or "unknown"


def write_page(out: Path, table: str) -> None:
    text = out.read_text() if out.exists() else "# Speed\n"
    begin, end = table.splitlines()[0], table.splitlines()[-1]
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + table + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    out.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--large", action="store_true", help="also 20 x 4000 x 3000 (slow)")
    parser.add_argument("--stacks", nargs="+", choices=STACKS, help="default: all but large")
    parser.add_argument("--out", type=Path, default=Path("docs/speed.md"))
    parser.add_argument("--workdir", type=Path, help="keep the rendered stacks here")
    args = parser.parse_args()
    names = args.stacks or [n for n in STACKS if n != "large" or args.large]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="stackmff-e2e-"))
    results, profiles = {}, {}
    for name in names:
        layers, width, height = STACKS[name]
        folder = work / name
        paths = sorted(folder.glob("*.jpg")) or render_stack(folder, layers, width, height)
        out = work / f"{name}-out"
        out.mkdir(exist_ok=True)
        # the large stack: one run each, default precision only (minutes per run); its
        # profiled v3 process is its timed one
        repeat, variants = (1, ["depthmap"]) if name == "large" else (args.repeat,
                                                                      list(VARIANTS))
        results[name] = time_stack(paths, out, repeat, variants)
        if name in ("small", "medium", "large"):
            for method in ("depthmap", "v3"):
                profiles[f"{name} {method}"] = stages = profile(paths, out, method, {})
                print(name, method, {k: round(v, 2) for k, v in stages.items()}, flush=True)
            if name == "large":
                results[name]["v3"] = (stages["total"], stages["peak"])
        print(name, {k: f"{w:.2f} s {m:.2f} GB" for k, (w, m) in results[name].items()},
              flush=True)
    command = "python benchmarks/end_to_end.py " + " ".join(sys.argv[1:])
    write_page(args.out, markdown(results, profiles, command.strip()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
