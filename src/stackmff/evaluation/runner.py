"""Run every method on every benchmark stack, each as its own process on the same files.

Our methods run as ``python -m stackmff fuse`` and the peers (enfuse, focus-stack, the
authors' ``openfocus``) as their own programs, so wall time and peak memory (the child's
maximum resident set, from GNU time) are measured the same way for all of them, start-up
included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from stackmff.evaluation.suites import BenchStack
from stackmff.io import read_pages, write_image
from stackmff.io.pixels import from_float, to_float
from stackmff.metrics import focus_map_accuracy, psnr, psnr_colour, qabf, ssim
from stackmff.outputs import indices_path

ENFUSE_FLAGS = ["--exposure-weight=0", "--saturation-weight=0", "--contrast-weight=1",
                "--hard-mask"]
# the network's blend modes, each a row of its own: name suffix -> fuse arguments
BLEND_ROWS = {"": (), "-soft": ("--blend", "soft"), "-band": ("--blend", "band"),
              "-soft2": ("--blend", "soft", "--blend-scales", "1,0.75")}
# openfocus (in a virtual environment of its own: it pins numpy below 2): its defaults (soft
# blend over two scales, every frame's exposure matched to the last), without exposure
# matching, and its hard argmax without exposure matching (every pixel an input pixel)
OPENFOCUS_ROWS = {"openfocus": (),
                  "openfocus-nomatch": ("--no-exposure-match", "--ai-mode", "soft"),
                  "openfocus-hard": ("--no-exposure-match", "--ai-mode", "hard")}
OPENFOCUS_ENV = "STACKMFF_OPENFOCUS"
OPENFOCUS_VENV = ".openfocus-venv"   # where scripts/setup_bench.sh installs it


def openfocus_program() -> str | None:
    """The ``openfocus`` program: ``$STACKMFF_OPENFOCUS``, else ``.openfocus-venv`` in the
    current folder or the source checkout, else on the PATH."""
    given = os.environ.get(OPENFOCUS_ENV)
    if given:
        return given if os.access(given, os.X_OK) else None
    checkout = Path(__file__).resolve().parents[3]
    for root in (Path.cwd(), checkout):
        program = root / OPENFOCUS_VENV / "bin" / "openfocus"
        if os.access(program, os.X_OK):
            return str(program)
    return shutil.which("openfocus")


@dataclass(frozen=True)
class Method:
    name: str
    command: tuple[str, ...]   # the program and its fixed arguments
    ours: bool


# variants of another method's family: a --quick run without --methods keeps one row per
# family (the variants run when named)
FAMILIES = {"v3+": "v3", "openfocus-nomatch": "openfocus", "openfocus-hard": "openfocus",
            **{f"{base}{suffix}": base for base in ("v3", "v3+") for suffix in BLEND_ROWS
               if suffix}}


def available_methods(requested: list[str] | None, checkpoint: str | None,
                      head: str | None = None, variants: bool = True) -> list[Method]:
    """Our classical methods, the network (given weights, else the shipped ones; v3+ with
    the given head, else the shipped one), installed peers; without ``variants`` (and
    nothing requested) one row per family."""
    from stackmff.errors import StackError
    from stackmff.methods import list_methods

    methods = []
    for m in list_methods():
        given = {k: v for k, v in (("checkpoint", checkpoint), ("head", head))
                 if v and k in m.options}
        fixed = [arg for k, v in given.items() for arg in (f"--{k}", str(v))]
        try:
            m.check_options(**given)
        except StackError:  # the network without weights given or shipped: no rows
            continue
        rows = BLEND_ROWS if "blend" in m.options else {"": ()}
        for suffix, blend in rows.items():
            methods.append(Method(m.name + suffix, (sys.executable, "-m", "stackmff", "fuse",
                                                    "-q", "-m", m.name, *fixed, *blend), True))
    if shutil.which("enfuse"):
        methods.append(Method("enfuse", ("enfuse", *ENFUSE_FLAGS), False))
    if shutil.which("focus-stack"):
        methods.append(Method("focus-stack", ("focus-stack",), False))
    openfocus = openfocus_program()
    if openfocus:
        methods += [Method(name, (openfocus, "--cpu", *flags), False)
                    for name, flags in OPENFOCUS_ROWS.items()]
    if requested:
        unknown = set(requested) - {m.name for m in methods}
        if unknown:
            raise ValueError(f"methods not available here: {', '.join(sorted(unknown))}")
        methods = [m for m in methods if m.name in requested]
    elif not variants:
        methods = [m for m in methods if m.name not in FAMILIES]
    return methods


@dataclass
class RunResult:
    suite: str
    variant: str
    scene: str
    method: str
    layers: int
    seconds: float
    peak_mb: float
    psnr: float = float("nan")
    ssim: float = float("nan")
    psnr_colour: float = float("nan")
    map_exact: float = float("nan")
    map_within_one: float = float("nan")
    qabf: float = float("nan")
    error: str = ""
    fused: np.ndarray | None = field(default=None, repr=False)

    def json_line(self) -> str:
        """The row as one line of a ``--rows`` file (without the fused image)."""
        return json.dumps({k: v for k, v in asdict(self).items()
                           if k != "fused"}) + "\n"


def read_rows(path: Path) -> list[RunResult]:
    """The rows of a ``--rows`` file, in the order they were written."""
    return [RunResult(**json.loads(line)) for line in path.read_text().splitlines()
            if line.strip()]


TIME = "/usr/bin/time"  # GNU time: the child's own peak memory (a fork of this process
# would count the benchmark's own memory as the child's)


def _run(command: list[str], work: Path) -> tuple[float, float, int, str]:
    """Run a program; returns (seconds, peak resident MB, exit status, stderr tail)."""
    stats = work / "time.txt"
    wrapped = [TIME, "-f", "%M", "-o", str(stats), *command] if os.path.exists(TIME) else command
    started = time.perf_counter()
    process = subprocess.run(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    peak = float(stats.read_text().split()[-1]) / 1024.0 if stats.exists() else float("nan")
    stderr = process.stderr.decode(errors="replace").strip().splitlines()
    return elapsed, peak, process.returncode, (stderr[-1] if stderr else "")


BOUNDS = ("(bound) true map", "(bound) best layer")


def bounds(stack: BenchStack) -> list[RunResult]:
    """Two results no real method reaches: the gather by the true focus map, and per pixel
    the layer closest to the truth (smallest 3x3 local error)."""
    from stackmff.data.physical import closest_layer
    from stackmff.stack_ops import gather

    candidates = []
    if stack.focus_map is not None:
        candidates.append((BOUNDS[0], stack.focus_map))
    candidates.append((BOUNDS[1], closest_layer(stack.layers, stack.truth)))
    results = []
    for name, focus_map in candidates:
        fused = gather(stack.layers, focus_map)
        results.append(RunResult(stack.suite, stack.variant, stack.name, name,
                                 len(stack.layers), float("nan"), float("nan"),
                                 psnr(fused, stack.truth), ssim(fused, stack.truth),
                                 psnr_colour(fused, stack.truth)))
    return results


def run_stack(stack: BenchStack, methods: list[Method], keep_images: bool = False) -> list[RunResult]:
    """Write the stack once, run every method on those files, score what comes back; add the
    two bounds where the truth is known."""
    results = bounds(stack) if stack.truth is not None else []
    with tempfile.TemporaryDirectory(prefix="stackmff-bench-") as work:
        work = Path(work)
        folder = work / "layers"   # the layers alone: openfocus reads a folder
        folder.mkdir()
        files = []
        for k, layer in enumerate(stack.layers):
            path = folder / f"layer_{k:02d}.png"
            write_image(from_float(layer, stack.dtype), path)
            files.append(str(path))
        for method in methods:
            openfocus = method.name.startswith("openfocus")
            out = work / f"{method.name}.{'png' if method.ours or openfocus else 'tif'}"
            map_path = work / f"{method.name}_map.png"
            if openfocus:
                command = [*method.command, "-i", str(folder), "-o", str(out)]
            elif not method.ours:  # enfuse and focus-stack both take --output=FILE
                command = [*method.command, f"--output={out}", *files]
            else:
                command = [*method.command, *files, "-o", str(out), "--focus-map", str(map_path)]
            seconds, peak, status, message = _run(command, work)
            result = RunResult(stack.suite, stack.variant, stack.name, method.name,
                               len(stack.layers), seconds, peak)
            if status != 0 or not out.exists():
                result.error = message or f"exit {status}"
                results.append(result)
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # peers write RGBA: alpha dropped
                fused = to_float(read_pages(out)[0])
            if fused.ndim == 2 and stack.layers.ndim == 4:
                fused = np.dstack([fused] * 3)
            elif fused.ndim == 3 and stack.layers.ndim == 3:   # grey written as RGB
                fused = fused[..., :3].mean(axis=-1)
            if stack.truth is not None:
                result.psnr, result.ssim = psnr(fused, stack.truth), ssim(fused, stack.truth)
                result.psnr_colour = psnr_colour(fused, stack.truth)
            if stack.focus_map is not None and map_path.exists():
                indices = read_pages(indices_path(map_path))[0]
                accuracy = focus_map_accuracy(indices, stack.focus_map)
                result.map_exact, result.map_within_one = accuracy.exact, accuracy.within_one
            result.qabf = qabf(stack.layers, fused)
            if keep_images:
                result.fused = fused
            results.append(result)
    return results
