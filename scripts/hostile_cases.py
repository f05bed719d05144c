"""Run the command line against hostile input and check its promises, case by case.

Usage: .venv/bin/python scripts/hostile_cases.py [--keep DIR] [--strace]

Every case runs `python -m stackmff ...` as its own process in a folder of its own and checks:
the exit status, that stderr holds no traceback (and one line when the run fails), and that a
failed or interrupted run leaves no file or folder behind and changes none that was there.
Interruptions (SIGINT, SIGTERM) are sent at several moments of a run; whatever the moment,
the outputs must appear all together or not at all. An existing training run must come out
of a mistaken, failing or interrupted start intact. Prints one line per case and a summary;
exits 1 if any case breaks a promise. With --strace, each case also runs under strace and
nothing outside its folder may be written or removed (scripts/write_trace.py).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from stackmff.testing import make_stack, write_stack

sys.path.insert(0, str(Path(__file__).parent))
import write_trace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

PYTHON = sys.executable


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a digest of its content."""
    state = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        state[key] = "dir" if path.is_dir() else hashlib.sha1(path.read_bytes()).hexdigest()
    return state


@dataclass
class Case:
    name: str
    setup: Callable[[Path], list[str]]   # builds inputs in the folder, returns the arguments
    succeeds: bool = False               # a hostile input that must now work
    expect: str = ""                     # text the error line (or stdout) must hold
    warns: str = ""                      # text a warning on stderr must hold


def stack_folder(folder: Path, name: str = "stack", n: int = 3, size=(40, 48), **kw) -> Path:
    layers, _, _ = make_stack(n_layers=n, height=size[0], width=size[1], **kw)
    write_stack(folder / name, layers)
    return folder / name


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def zero_byte(suffix: str, where: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        stack = stack_folder(folder)
        empty = stack / f"empty{suffix}"
        empty.write_bytes(b"")
        return ["fuse", str(stack if where == "folder" else empty), *(
            [] if where == "folder" else [str(p) for p in sorted(stack.glob("layer_*"))]),
            "-o", str(folder / "out" / "fused.png")]
    return setup


def huge_png(folder: Path) -> list[str]:
    stack = stack_folder(folder)
    (stack / "huge.png").write_bytes(png_declaring(100_000, 100_000))
    return ["fuse", str(stack), "-o", str(folder / "fused.png")]


def planar_rgb(folder: Path) -> list[str]:
    layers, _, _ = make_stack(n_layers=4, height=40, width=48, colour=True)
    (folder / "planar").mkdir()
    for k, layer in enumerate(layers):
        rgb = (layer * 255).astype(np.uint8)
        tifffile.imwrite(folder / "planar" / f"{k}.tif", rgb.transpose(2, 0, 1),
                         photometric="rgb", planarconfig="separate")
    return ["fuse", str(folder / "planar"), "-o", str(folder / "fused.png")]


def multipage(pages: int) -> np.ndarray:
    layers, _, _ = make_stack(n_layers=pages, height=40, width=48)
    return (layers * 255).astype(np.uint8)


def truncated_tiff(folder: Path) -> list[str]:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, multipage(8))
    data = buffer.getvalue()
    (folder / "z.tif").write_bytes(data[: len(data) // 2])
    return ["fuse", str(folder / "z.tif"), "-o", str(folder / "fused.png")]


def split_series_tiff(folder: Path) -> list[str]:
    with tifffile.TiffWriter(folder / "z.tif") as tif:
        for page in multipage(8):
            tif.write(page)
    return ["fuse", str(folder / "z.tif"), "-o", str(folder / "fused.png")]


def duplicate(kind: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        stack = stack_folder(folder)
        first = str(sorted(stack.glob("*.png"))[0])
        extra = [first, first] if kind == "file twice" else [str(stack), first]
        return ["fuse", *extra, "-o", str(folder / "fused.png")]
    return setup


def thin(command: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        stack = folder / "stack"
        layers = np.random.default_rng(0).random((3, 40, 1), dtype=np.float32)
        write_stack(stack, layers)
        if command == "align":
            return ["align", str(stack), "-o", str(folder / "aligned")]
        return ["fuse", "--align", str(stack), "-o", str(folder / "fused.png")]
    return setup


def tolerance(value: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        return ["align", str(stack_folder(folder)), "-o", str(folder / "aligned"),
                "--tolerance", value]
    return setup


def bad_checkpoint(kind: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        import torch

        from stackmff.model import ModelConfig, StackMFFV3

        path = folder / "bad.pt"
        good = {"format_version": 1, "model_config": ModelConfig().to_dict(),
                "state_dict": StackMFFV3().state_dict(), "meta": {}}
        if kind == "zero bytes":
            path.write_bytes(b"")
        else:
            payload = dict(good)
            if kind == "state_dict list":
                payload["state_dict"] = [1, 2]
            elif kind == "state_dict int":
                payload["state_dict"] = {"x": 3}
            elif kind == "model_config list":
                payload["model_config"] = [1, 2]
            elif kind == "widths abcd":
                payload["model_config"] = {**good["model_config"], "widths": "abcd"}
            elif kind == "0 heads":
                payload["model_config"] = {**good["model_config"], "attention_heads": 0}
            elif kind == "huge width":
                payload["model_config"] = {**good["model_config"],
                                           "widths": [131072, 131072, 131072, 131072]}
            elif kind == "format_version string":
                payload["format_version"] = "1"
            elif kind == "pickled object":
                payload["meta"] = {"object": argparse.Namespace(a=1)}
            torch.save(payload, path)
        return ["fuse", str(stack_folder(folder)), "-o", str(folder / "fused.png"), "-m", "v3",
                "--checkpoint", str(path)]
    return setup


def simple(*tail: str, method: str | None = None) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        args = ["fuse", str(stack_folder(folder)), "-o", str(folder / "fused.png"), *tail]
        return args + (["-m", method] if method else [])
    return setup


def output(path: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        return ["fuse", str(stack_folder(folder)), "-o", str(folder / path)]
    return setup


def failing_write(folder: Path) -> list[str]:
    (folder / "blocker").write_text("a file where a folder is asked for")
    return ["fuse", str(stack_folder(folder)), "-o", str(folder / "new" / "deeper" / "fused.png"),
            "--focus-map", str(folder / "blocker" / "map.png")]


SMOKE = (ROOT / "configs" / "smoke.toml").read_text()


def training_run(folder: Path, extra: str = "", **replace: str) -> Path:
    """A config for a seconds-long run in ``folder/run``."""
    text = SMOKE.replace('out = "runs/smoke"', f'out = "{folder / "run"}"') + extra
    for old, new in replace.items():
        text = text.replace(old, new)
    path = folder / "config.toml"
    path.write_text(text)
    return path


def existing_run(folder: Path) -> Path:
    config = training_run(folder)
    subprocess.run([PYTHON, "-m", "stackmff", "train", "--config", str(config)], check=True,
                   capture_output=True)
    return config


def train_again(folder: Path) -> list[str]:
    return ["train", "--config", str(existing_run(folder))]


def train_bad(text_from: str, text_to: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        existing_run(folder)
        return ["train", "--config", str(training_run(folder, **{text_from: text_to})),
                "--resume"]
    return setup


SHIPPED_HEAD = ROOT / "src" / "stackmff" / "weights" / "stackmff-v3plus-head.pt"
HEAD_SMOKE = (ROOT / "configs" / "head-smoke.toml").read_text()


def write_bad_head(path: Path, kind: str) -> None:
    """The shipped head with one thing made hostile."""
    import torch

    if kind == "truncated":
        path.write_bytes(SHIPPED_HEAD.read_bytes()[:9000])
        return
    payload = torch.load(SHIPPED_HEAD, weights_only=True)
    config, state = dict(payload["model_config"]), dict(payload["state_dict"])
    if kind == "sigma 0":
        config["fine_sigma"] = 0.0
    elif kind == "NaN weights":
        state["mix.weight"] = torch.full_like(state["mix.weight"], float("nan"))
    elif kind == "format_version 99":
        payload["format_version"] = 99
    elif kind == "width 40000":
        config["width"] = 40_000
    elif kind == "dilated 12":
        config["dilated"] = 12
        state.update({f"wide.{i}.{part}": state[f"wide.0.{part}"] for i in range(12)
                      for part in ("weight", "bias")})
    elif kind == "fine_sigma 1e9":
        config["fine_sigma"] = 1e9
    if kind == "pickle protocol 4":
        torch.save(payload, path, _use_new_zipfile_serialization=False, pickle_protocol=4)
        return
    torch.save({**payload, "model_config": config, "state_dict": state}, path)


def bad_head(kind: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        write_bad_head(folder / "bad.pt", kind)
        return ["fuse", str(stack_folder(folder)), "-m", "v3+", "--head", str(folder / "bad.pt"),
                "-o", str(folder / "fused.png")]
    return setup


def resume_bad_head(kind: str) -> Callable[[Path], list[str]]:
    """A head training run whose last.pt is hostile, resumed."""
    def setup(folder: Path) -> list[str]:
        run = folder / "run"
        run.mkdir()
        write_bad_head(run / "last.pt", kind)
        (run / "log.csv").write_text("step,minutes\n1,0.1\n")
        config = folder / "head.toml"
        text = HEAD_SMOKE.replace("width = 6", "width = 12\ndilated = 1")  # the shipped shape
        text = text.replace('"runs/head-smoke"', f'"{run.as_posix()}"')
        config.write_text(text.replace('"runs/head-smoke-cache"', f'"{folder.as_posix()}/cache"'))
        return ["train", "--config", str(config), "--resume"]
    return setup


EXAMPLE = ROOT / "examples" / "microscopy" / "cells.ome.tif"  # 2 channels x 12 planes


def fuse_microscopy(path: Path, folder: Path) -> list[str]:
    out = folder / "out"
    return ["fuse", str(path), "-o", str(out / "fused.ome.tif"), "--height-map",
            str(out / "heights.tif")]


def edited_xml(old: str = "", new: str = "", name: str = "cells.ome.tif",
               cut: bool = False) -> Callable[[Path], list[str]]:
    """The example with its OME-XML edited (``old`` -> ``new``) or cut in half."""
    def setup(folder: Path) -> list[str]:
        path = folder / name
        shutil.copy(EXAMPLE, path)
        with tifffile.TiffFile(path) as tif:
            xml = tif.pages[0].description
        tifffile.tiffcomment(path, (xml[: len(xml) // 2] if cut else xml.replace(old, new))
                             .encode())
        return fuse_microscopy(path, folder)
    return setup


def nan_pixels(folder: Path) -> list[str]:
    """The example as float32 with 100 NaN pixels in its first channel."""
    with tifffile.TiffFile(EXAMPLE) as tif:
        data = tif.series[0].asarray().astype(np.float32)
    flat = np.random.default_rng(0).choice(data[0].size, 100, replace=False)
    data[0].reshape(-1)[flat] = np.nan
    path = folder / "float.ome.tif"
    tifffile.imwrite(path, data, ome=True, photometric="minisblack",
                     metadata={"axes": "CZYX", "PhysicalSizeZ": 0.4})
    return fuse_microscopy(path, folder)


def example_zarr(delete: int = 0, translation: float = 0.0
                 ) -> Callable[[Path], list[str]]:
    """The example as OME-Zarr 0.5, one chunk per plane, ``delete`` chunks removed (all for
    ``-1``)."""
    def setup(folder: Path) -> list[str]:
        import zarr

        data = tifffile.imread(EXAMPLE)[None]
        path = folder / "cells.ome.zarr"
        group = zarr.open_group(str(path), mode="w", zarr_format=3)
        group.create_array("0", shape=data.shape, dtype=data.dtype,
                           chunks=(1, 1, 1) + data.shape[3:])[...] = data
        axes = [{"name": a, "type": {"t": "time", "c": "channel"}.get(a, "space")}
                | ({"unit": "micrometer"} if a in "zyx" else {}) for a in "tczyx"]
        group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [
            {"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, 1.0, 0.4, 0.2, 0.2]},
                {"type": "translation", "translation": [0.0, 0.0, translation, 0.0, 0.0]}]}]}]}
        chunks = sorted((path / "0" / "c").rglob("*"))
        for chunk in [c for c in chunks if c.is_file()][: None if delete == -1 else delete]:
            chunk.unlink()
        return fuse_microscopy(path, folder)
    return setup


CELLS = EXAMPLE


def ome_zarr_input(path: Path) -> None:
    """cells.ome.tif as an OME-Zarr image (NGFF 0.4), for an input that is a folder."""
    import zarr

    data = tifffile.imread(CELLS)[None]  # TCZYX
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, 1) + data.shape[2:])
    group["0"][...] = data
    axes = [{"name": a, "type": {"t": "time", "c": "channel"}.get(a, "space")} for a in "tczyx"]
    group.attrs.update({"multiscales": [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * 5}]}]}]})


def zarr_over(where: str) -> Callable[[Path], list[str]]:
    """An OME-Zarr output whose path is taken by a folder that holds the input, or by
    someone's unrelated folder."""
    def setup(folder: Path) -> list[str]:
        store = folder / "res.ome.zarr"
        store.mkdir()
        if where == "holding the input":
            shutil.copy(CELLS, store / "cells.ome.tif")
            return ["fuse", "res.ome.zarr/cells.ome.tif", "-o", "res.ome.zarr"]
        if where == "holding an OME-Zarr input":
            ome_zarr_input(store / "in.ome.zarr")
            return ["fuse", "res.ome.zarr/in.ome.zarr", "-o", "res.ome.zarr"]
        (store / "notes.txt").write_text("someone's files")
        return ["fuse", str(CELLS), "-o", "res.ome.zarr"]
    return setup


def batch_zarr_over(where: str) -> Callable[[Path], list[str]]:
    """``batch --format ome.zarr --force`` onto a folder holding its input, or an unrelated
    one."""
    def setup(folder: Path) -> list[str]:
        store = folder / "out" / "cells.ome.zarr"
        store.mkdir(parents=True)
        if where == "holding the input":
            shutil.copy(CELLS, store / "cells.ome.tif")
            given = "out/cells.ome.zarr/cells.ome.tif"
        else:
            (store / "notes.txt").write_text("someone's files")
            given = str(CELLS)
        return ["batch", given, "-o", "out", "--format", "ome.zarr", "--force"]
    return setup


def batch_here(folder: Path) -> list[str]:
    """A stack in the folder the batch is given as ".", beside someone's ``run1.png``."""
    layers, _, _ = make_stack(n_layers=3, height=40, width=48)
    write_stack(folder, layers)
    (folder / "results").mkdir()
    (folder / "results" / "run1.png").write_bytes(b"someone else's file")
    return ["batch", ".", "-o", "results/run1", "--workers", "1"]


def batch_out_by_link(folder: Path) -> list[str]:
    stack_folder(folder)
    (folder / "victim.png").write_bytes(b"someone else's file")
    (folder / "out").mkdir()
    (folder / "out" / "stack.png").symlink_to(folder / "victim.png")
    return ["batch", "stack", "-o", "out", "--force"]


def input_by_another_name(how: str, command: str = "fuse") -> Callable[[Path], list[str]]:
    """An output that is an input reached under another name."""
    def setup(folder: Path) -> list[str]:
        stack = stack_folder(folder)
        view = folder / "view"
        if how == "hard link":
            view.mkdir()
            os.link(stack / "layer_1.png", view / "layer_1.png")
        else:
            view.symlink_to(stack, target_is_directory=True)
        if command == "align":
            return ["align", "stack", "-o", "view"]
        return ["fuse", "stack", "-o", "view/layer_1.png"]
    return setup


def edited_zarr(key: str, value) -> Callable[[Path], list[str]]:
    """The example as OME-Zarr 0.5 with one metadata key made hostile (``key`` a path of
    names and indices under ``ome``)."""
    def setup(folder: Path) -> list[str]:
        import zarr

        args = example_zarr()(folder)
        group = zarr.open_group(str(folder / "cells.ome.zarr"), mode="r+")
        attrs = dict(group.attrs)
        *parents, last = key.split("/")
        node = attrs["ome"]
        for part in parents:
            node = node[int(part) if part.isdigit() else part]
        node[int(last) if last.isdigit() else last] = value
        group.attrs.put(attrs)
        return args
    return setup


def typed_zarr(dtype: str) -> Callable[[Path], list[str]]:
    """A 2-layer OME-Zarr in ``dtype``, fused to an .ome.tif."""
    def setup(folder: Path) -> list[str]:
        import zarr

        data = (tifffile.imread(EXAMPLE)[:1] / 65535).astype(dtype)
        path = folder / "typed.ome.zarr"
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
        group.create_array("0", shape=data.shape, dtype=data.dtype)[...] = data
        axes = [{"name": a, "type": {"c": "channel"}.get(a, "space")} for a in "czyx"]
        group.attrs["multiscales"] = [{"version": "0.4", "axes": axes,
                                       "datasets": [{"path": "0"}]}]
        return ["fuse", str(path), "-o", str(folder / "out" / "fused.ome.tif")]
    return setup


def huge_among_small(folder: Path) -> list[str]:
    stack = stack_folder(folder)
    (stack / "huge.png").write_bytes(png_declaring(20_000, 20_000))
    return ["fuse", str(stack), "-o", str(folder / "fused.png")]


def earlier_result(folder: Path) -> list[str]:
    stack = stack_folder(folder)
    subprocess.run([PYTHON, "-m", "stackmff", "fuse", str(stack), "-o", str(stack / "fused.png")],
                   check=True, capture_output=True)
    return ["fuse", str(stack), "-o", str(stack / "fused.png")]


def stack_list(name: str, text: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        stack_folder(folder, "s0")
        stack_folder(folder, "s1")
        (folder / name).write_text(text, encoding="utf-8")
        return ["batch", str(folder / name), "-o", str(folder / "out")]
    return setup


def same_names(folder: Path) -> list[str]:
    path = folder / "twins.ome.tif"
    tifffile.imwrite(path, tifffile.imread(EXAMPLE), ome=True, photometric="minisblack",
                     metadata={"axes": "CZYX", "Channel": {"Name": ["DAPI", "DAPI"]}})
    return ["fuse", str(path), "-o", str(folder / "out" / "fused.ome.tif"),
            "--focus-channel", "DAPI"]


def batch_plate(folder: Path, n: int = 2) -> Path:
    """``n`` tiny stacks to batch."""
    for k in range(n):
        stack_folder(folder / "plate", f"s{k}", size=(24, 32), seed=k)
    return folder / "plate"


def batch_into_input(inside: bool) -> Callable[[Path], list[str]]:
    """OUTDIR as the input folder itself, or inside it with a previous run's results there."""
    def setup(folder: Path) -> list[str]:
        plate = batch_plate(folder)
        if not inside:
            return ["batch", str(plate), "-o", str(plate), "--workers", "1"]
        args = ["batch", str(plate), "-o", str(plate / "fused"), "--workers", "1"]
        subprocess.run([PYTHON, "-m", "stackmff", *args], capture_output=True, check=True)
        return args
    return setup


def batch_args(folder: Path, *tail: str) -> list[str]:
    return ["batch", str(folder / "plate"), "-o", str(folder / "out"), "--workers", "1", *tail]


def batch_over(prepare: Callable[[Path], None], *tail: str,
               first: tuple[str, ...] = ()) -> Callable[[Path], list[str]]:
    """A batch into an OUTDIR that a finished batch (``first``: its extra arguments) left,
    then ``prepare`` changed."""
    def setup(folder: Path) -> list[str]:
        batch_plate(folder)
        subprocess.run([PYTHON, "-m", "stackmff", *batch_args(folder, *first)], check=True,
                       capture_output=True)
        prepare(folder / "out")
        return batch_args(folder, *tail)
    return setup


def batch_into(prepare: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    """A first batch into an OUTDIR that ``prepare`` made."""
    def setup(folder: Path) -> list[str]:
        batch_plate(folder)
        (folder / "out").mkdir()
        prepare(folder / "out")
        return batch_args(folder)
    return setup


def report_folder(out: Path) -> None:
    (out / "batch.jsonl").mkdir()


def report_link(out: Path) -> None:
    (out.parent / "elsewhere.txt").write_text("not the report\n")
    (out / "batch.jsonl").symlink_to(out.parent / "elsewhere.txt")


def linked_subfolder(folder: Path) -> list[str]:
    stack_folder(folder / "plate" / "row", "well")
    (folder / "elsewhere").mkdir()
    (folder / "out").mkdir()
    (folder / "out" / "row").symlink_to(folder / "elsewhere", target_is_directory=True)
    return batch_args(folder)


def foreign_zarr_folder(folder: Path) -> list[str]:
    (folder / "plate").mkdir()
    tifffile.imwrite(folder / "plate" / "A1.ome.tif", multipage(4).astype(np.uint16),
                     ome=True, photometric="minisblack", metadata={"axes": "ZYX"})
    (folder / "out" / "A1.ome.zarr").mkdir(parents=True)
    (folder / "out" / "A1.ome.zarr" / "precious.txt").write_text("mine")
    return batch_args(folder, "--format", "ome.zarr", "--force")


def empty_output(out: Path) -> None:
    (out / "s1.png").write_bytes(b"")


def cut_report(out: Path) -> None:
    text = (out / "batch.jsonl").read_text()
    (out / "batch.jsonl").write_text(text[:len(text) - 40])
    (out / "s1.png").unlink()


def dead_writer_temporary(out: Path) -> None:
    dead = subprocess.run([PYTHON, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    from stackmff.io.atomic import _prefix

    (out / f"{_prefix().replace(str(os.getpid()), dead)}abcd1234.tmp").write_bytes(b"half")
    (out / "s0.png").unlink()


def camera(kind: str) -> Callable[[Path], list[str]]:
    """A stack of camera files with one bad file or option (stackmff.testing_camera)."""

    def setup(folder: Path) -> list[str]:
        from PIL import Image

        from stackmff.testing_camera import dng_stack, heic_stack, photo_stack

        out = ["-o", str(folder / ("fused.jpg" if kind == "linear into jpg" else "fused.tif"))]
        if kind in ("undecodable raw", "raw and jpeg", "linear into jpg"):
            paths, _ = dng_stack(folder / "stack", n_layers=3, height=32, width=48)
            if kind == "undecodable raw":
                paths[1].write_bytes(paths[1].read_bytes()[:300])
            if kind == "raw and jpeg":
                photo_stack(folder / "stack", n_layers=1, height=32, width=48)
            extra = ["--colour-space", "linear"] if kind == "linear into jpg" else []
            return ["fuse", str(folder / "stack"), *out, *extra]
        if kind == "truncated heic":
            paths, _ = heic_stack(folder / "stack", n_layers=3, height=32, width=48)
            paths[1].write_bytes(paths[1].read_bytes()[:300])
            return ["fuse", str(folder / "stack"), *out]
        paths = photo_stack(folder / "stack", n_layers=3, height=32, width=48)
        image = Image.open(paths[1])
        image.load()
        if kind == "corrupt icc":
            image.save(paths[1], icc_profile=b"\0\0\1\0" + b"damaged" * 40)
        else:  # EXIF too large for a JPEG's APP1 segment: a warning, the image written
            exif = image.getexif()
            exif[0x010E] = "x" * 70000
            image.save(paths[1].with_suffix(".png"), exif=exif)
            paths[1].unlink()
            return ["fuse", str(folder / "stack"), "-o", str(folder / "fused.jpg")]
        return ["fuse", str(folder / "stack"), *out]

    return setup


CASES = [
    Case("zero-byte .png in a folder", zero_byte(".png", "folder"), expect="empty.png"),
    Case("zero-byte .jpg in a folder", zero_byte(".jpg", "folder"), expect="empty.jpg"),
    Case("zero-byte .tif in a folder", zero_byte(".tif", "folder"), expect="empty.tif"),
    Case("zero-byte .png on the command line", zero_byte(".png", "argument"), expect="empty.png"),
    Case("PNG declaring 100000 x 100000", huge_png, expect="huge.png"),
    Case("planar RGB TIFFs", planar_rgb, succeeds=True, expect="fused 4 layers"),
    Case("truncated 8-page TIFF", truncated_tiff, expect="z.tif"),
    Case("8 pages in 8 series", split_series_tiff, succeeds=True, expect="fused 8 layers"),
    Case("a file given twice", duplicate("file twice"), expect="layer_0.png"),
    Case("a folder plus one of its files", duplicate("folder and file"), expect="layer_0.png"),
    Case("align on 1-pixel-wide layers", thin("align")),
    Case("fuse --align on 1-pixel-wide layers", thin("fuse")),
    Case("align --tolerance nan", tolerance("nan")),
    Case("align --tolerance -1", tolerance("-1")),
    *[Case(f"checkpoint: {kind}", bad_checkpoint(kind), expect="bad.pt")
      for kind in ("zero bytes", "state_dict list", "state_dict int", "model_config list",
                   "widths abcd", "0 heads", "huge width", "format_version string",
                   "pickled object")],
    Case("--checkpoint with depthmap", simple("--checkpoint", "x.pt"), expect="--checkpoint"),
    Case("--tile with depthmap", simple("--tile", "256"), expect="--tile"),
    Case("--tile-margin 100000", simple("--tile-margin", "100000", method="v3")),
    Case("unsupported output type", output("fused.xyz"), expect=".xyz"),
    Case("--confidence with pyramid", simple("--confidence", "c.png", method="pyramid"),
         expect="no confidence map"),
    Case("output name of 250 characters", output("f" * 246 + ".png"), succeeds=True),
    Case("a write that fails after making folders", failing_write),
    Case("train over an existing run", train_again, expect="--resume"),
    Case("train: unknown [model] key", train_bad("[model]", "[model]\nwidth = 8"),
         expect="width"),
    Case("train: negative max_steps", train_bad("max_steps = 6", "max_steps = -1"),
         expect="max_steps"),
    Case("train: crop of the wrong type", train_bad("crop = 64", 'crop = "big"'),
         expect="crop"),
    Case("a RAW file LibRaw cannot decode", camera("undecodable raw"), expect="LibRaw"),
    Case("a truncated HEIC", camera("truncated heic"), expect="IMG_0002.heic"),
    Case("a corrupt ICC profile", camera("corrupt icc"), expect="ICC profile is damaged"),
    Case("RAW and JPEG in one stack", camera("raw and jpeg"), expect="mixes RAW files"),
    Case("--colour-space linear into a .jpg", camera("linear into jpg"), expect="16 bits"),
    Case("EXIF too large for a JPEG APP1 segment", camera("exif too large"), succeeds=True,
         warns="too large for a JPEG APP1 segment"),
]
MICROSCOPY_CASES = [
    Case("OME-XML declaring SizeX 320 for 160-pixel pages",
         edited_xml('SizeX="160"', 'SizeX="320"'), expect="does not match its pages"),
    Case("OME-XML declaring SizeZ 13 for 12 planes",
         edited_xml('SizeZ="12"', 'SizeZ="13"'), expect="26 planes declared"),
    Case("OME-XML cut short", edited_xml(cut=True), expect="does not parse"),
    Case("OME-XML cut short in a file named .tif", edited_xml(name="cells.tif", cut=True),
         expect="does not parse"),
    Case("PositionZ NaN", edited_xml('PositionZ="20.0"', 'PositionZ="NaN"'), succeeds=True,
         expect="fused 12 layers", warns="Z origin"),
    Case("PhysicalSizeZ 1e300", edited_xml('PhysicalSizeZ="0.4"', 'PhysicalSizeZ="1e300"'),
         expect="float32"),
    Case("PositionZ 1e308", edited_xml('PositionZ="20.0"', 'PositionZ="1e308"'),
         expect="float32"),
    Case("100 NaN pixels in a float32 OME-TIFF", nan_pixels, succeeds=True,
         expect="fused 12 layers", warns="100 non-finite"),
    Case("OME-Zarr translation NaN", example_zarr(translation=float("nan")), succeeds=True,
         expect="fused 12 layers", warns="Z origin"),
    Case("OME-Zarr with 3 of 24 chunks missing", example_zarr(delete=3), succeeds=True,
         expect="fused 12 layers", warns="3 of 24 chunks"),
    Case("OME-Zarr with every chunk missing", example_zarr(delete=-1), expect="every chunk"),
]
CASES += MICROSCOPY_CASES


HEAD_CASES = [
    *[Case(f"v3+ head: {kind}", bad_head(kind), expect="bad.pt")
      for kind in ("sigma 0", "NaN weights", "format_version 99", "width 40000", "dilated 12",
                   "fine_sigma 1e9", "truncated", "pickle protocol 4")],
    *[Case(f"train --resume from a head with {kind}", resume_bad_head(kind), expect="last.pt")
      for kind in ("sigma 0", "NaN weights", "fine_sigma 1e9", "truncated")],
]
CASES += HEAD_CASES

OUTPUT_SAFETY_CASES = [
    Case("OME-Zarr output over a folder holding its input", zarr_over("holding the input"),
         expect="holds the input"),
    Case("OME-Zarr output over a store holding an OME-Zarr input",
         zarr_over("holding an OME-Zarr input"), expect="holds the input"),
    Case("OME-Zarr output over an unrelated folder", zarr_over("unrelated"),
         expect="not an OME-Zarr image written by stackmff"),
    Case("batch --format ome.zarr --force over a folder holding its input",
         batch_zarr_over("holding the input"), expect="holds the input"),
    Case("batch --format ome.zarr --force over an unrelated folder",
         batch_zarr_over("unrelated"), expect="not an OME-Zarr image written by stackmff"),
    Case("batch . -o results/run1 beside someone's run1.png", batch_here, succeeds=True,
         expect="1 fused"),
    Case("batch output led out of OUTDIR by a link", batch_out_by_link,
         expect="outside the output folder"),
    Case("fuse onto a hard link of an input", input_by_another_name("hard link"),
         expect="refusing to overwrite input file"),
    Case("fuse onto an input through a linked folder", input_by_another_name("linked folder"),
         expect="refusing to overwrite input file"),
    Case("align onto a hard link of an input", input_by_another_name("hard link", "align"),
         expect="refusing to overwrite input file"),
]
CASES += OUTPUT_SAFETY_CASES


def dask_batch(address: str | Callable[[], str]) -> Callable[[Path], list[str]]:
    """``batch --dask ADDRESS`` over one stack; a callable address is made at setup."""
    def setup(folder: Path) -> list[str]:
        where = address() if callable(address) else address
        return ["batch", str(stack_folder(folder).parent), "-o", str(folder / "out"),
                "--dask", where]
    return setup


def tcp_server(reply: bytes | None) -> Callable[[], str]:
    """A server on 127.0.0.1 that accepts and answers ``reply`` (b"": never answers), kept
    open in a thread for the rest of the script; ``None``: a port where nothing listens."""
    def start() -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        if reply is None:
            listener.close()
            return f"tcp://127.0.0.1:{port}"
        held = []

        def serve() -> None:
            while True:
                conn, _ = listener.accept()
                held.append(conn)
                conn.sendall(reply)
        threading.Thread(target=serve, daemon=True).start()
        return f"tcp://127.0.0.1:{port}"
    return start


DASK_CASES = [
    Case("--dask tls:// without a security configuration", dask_batch("tls://127.0.0.1:8786"),
         expect="tls:// needs a Dask security configuration"),
    Case("--dask ucx:// without ucx-py", dask_batch("ucx://127.0.0.1:8786"),
         expect="ucx:// is not supported"),
    Case("--dask with an unknown scheme", dask_batch("foo://127.0.0.1:8786"),
         expect="foo:// is not supported"),
    Case("--dask at a port where nothing listens", dask_batch(tcp_server(None)),
         expect="refused"),
    Case("--dask at a server that never answers", dask_batch(tcp_server(b"")),
         expect="within 10 s"),
    Case("--dask at an HTTP server", dask_batch(tcp_server(b"HTTP/1.1 400 Bad Request\r\n\r\n")),
         expect="is not a Dask scheduler"),
    Case("--dask local", dask_batch("local"), succeeds=True, expect="1 fused"),
]
CASES += DASK_CASES


TRANSFORMS = "multiscales/0/datasets/0/coordinateTransformations"
INPUT_CASES = [
    Case("OME-Zarr coordinateTransformations [[1, 2]]", edited_zarr(TRANSFORMS, [[1, 2]]),
         expect="coordinateTransformations[0]"),
    Case("OME-Zarr omero [1, 2]", edited_zarr("omero", [1, 2]), expect="omero is [1, 2]"),
    Case("OME-Zarr multiscales [\"abc\"]", edited_zarr("multiscales", ["abc"]),
         expect="multiscales[0]"),
    Case("OME-Zarr omero.channels as names", edited_zarr("omero", {"channels": ["DAPI", "GFP"]}),
         expect="omero.channels[0]"),
    Case("OME-Zarr scale shorter than the axes", edited_zarr(f"{TRANSFORMS}/0/scale", [1, 1]),
         expect="scale is [1, 1]"),
    Case("OME-Zarr translation shorter than the axes",
         edited_zarr(f"{TRANSFORMS}/1/translation", [0]), expect="translation is [0]"),
    Case("OME-Zarr non-numeric scale", edited_zarr(f"{TRANSFORMS}/0/scale", ["a"] * 5),
         expect="cells.ome.zarr"),
    Case("PhysicalSizeZ \"abc\"", edited_xml('PhysicalSizeZ="0.4"', 'PhysicalSizeZ="abc"'),
         expect="PhysicalSizeZ 'abc' is not a number"),
    Case("int64 OME-Zarr to .ome.tif", typed_zarr("int64"), expect="int64"),
    Case("float16 OME-Zarr to .ome.tif", typed_zarr("float16"), succeeds=True,
         expect="fused 12 layers"),
    Case("PNG declaring 20000 x 20000 among small layers", huge_among_small,
         expect="differ in size"),
    Case("an earlier result in the layers' folder", earlier_result, succeeds=True,
         expect="fused 3 layers", warns="fused.png"),
    Case(".txt stack list with a BOM", stack_list("list.txt", "\ufeffs0\ns1\n"),
         succeeds=True),
    Case(".csv stack list with a header", stack_list("list.csv", "path\ns0\ns1\n"),
         succeeds=True),
    Case("two channels named DAPI", same_names, expect="ambiguous"),
]
CASES += INPUT_CASES


BATCH_CASES = [
    Case("batch -o the input folder", batch_into_input(False), expect="is the input folder"),
    Case("batch again into OUTDIR inside the input folder", batch_into_input(True),
         succeeds=True, expect="0 fused, 2 skipped", warns="left out 1 stack(s)"),
    Case("batch: a folder in the place of batch.jsonl", batch_into(report_folder),
         expect="batch.jsonl"),
    Case("batch: batch.jsonl linked outside OUTDIR", batch_into(report_link),
         expect="symbolic link"),
    Case("batch: a linked folder inside OUTDIR", linked_subfolder, expect="symbolic link"),
    Case("batch --force over a foreign folder at an .ome.zarr output", foreign_zarr_folder,
         expect="A1.ome.zarr"),
    Case("batch: resume over an empty output", batch_over(empty_output), succeeds=True,
         expect="1 fused, 1 skipped"),
    Case("batch: resume over outputs of another method",
         batch_over(lambda out: None, first=("-m", "pyramid")), succeeds=True,
         expect="2 fused, 0 skipped"),
    Case("batch: resume over a report cut mid-line", batch_over(cut_report), succeeds=True,
         expect="1 fused, 1 skipped"),
    Case("batch: resume over a dead writer's temporary", batch_over(dead_writer_temporary),
         succeeds=True, expect="1 fused, 1 skipped"),
]
CASES += BATCH_CASES


def watch_args(shots: str, out: str, *tail: str) -> list[str]:
    """A watch that polls (no watchdog needed) and ends by itself."""
    return ["watch", shots, "-o", out, "--poll", "0.1", "--gap", "0.6", "--settle", "0.2",
            "--stop-when-idle", "0.6", *tail]


def watch_case(*tail: str, out: str = "out") -> Callable[[Path], list[str]]:
    """``watch`` on a folder with one stack in a subfolder and ``tail`` (``{shots}`` stands
    for the watched folder)."""
    def setup(folder: Path) -> list[str]:
        stack_folder(folder / "shots", "A")
        shots = str(folder / "shots")
        return watch_args(shots, out.replace("{shots}", shots),
                          *(t.replace("{shots}", shots) for t in tail))
    return setup


def watch_cut_frame(folder: Path) -> list[str]:
    """A frame whose writer died half way through, beside two whole ones."""
    stack = stack_folder(folder / "shots", "A")
    data = (stack / "layer_0.png").read_bytes()
    (stack / "layer_9.png").write_bytes(data[:len(data) // 2])
    return watch_args(str(folder / "shots"), "out")


WATCH_CASES = [
    Case("watch a folder that is not there", lambda folder: watch_args(
        str(folder / "nowhere"), "out"), expect="no such folder"),
    Case("watch -o the watched folder", watch_case(out="{shots}"),
         expect="is the watched folder"),
    Case("watch --gap 0", watch_case("--gap", "0"), expect="--gap must be more than 0"),
    Case("watch --layers 1", watch_case("--layers", "1"), expect="--layers must be at least 2"),
    Case("watch --live over a frame", watch_case("--live", "{shots}/A/layer_1.png"),
         expect="did not write"),
    Case("watch with OUTDIR inside the watched folder", watch_case(out="{shots}/fused"),
         succeeds=True, expect="watch: 1 fused"),
    Case("watch: a frame cut short", watch_cut_frame, succeeds=True, expect="watch: 1 fused",
         warns="left out"),
]
CASES += WATCH_CASES


def run_case(case: Case, folder: Path, strace: bool = False) -> list[str]:
    args = case.setup(folder)
    before = snapshot(folder)
    command = [PYTHON, "-m", "stackmff", *args]
    log = folder.parent / f"{folder.name}.strace"
    if strace:
        command = write_trace.traced(command, log)
    process = subprocess.run(command, capture_output=True, text=True, cwd=folder, timeout=300)
    problems = write_trace.outside(log, folder, folder) if strace else []
    if "Traceback" in process.stderr:
        problems.append("traceback")
    if case.succeeds:
        if process.returncode != 0:
            problems.append(f"exit {process.returncode}: {process.stderr.strip()[:200]}")
        elif case.expect and case.expect not in process.stdout:
            problems.append(f"stdout lacks {case.expect!r}: {process.stdout.strip()[:200]}")
        if case.warns and case.warns not in process.stderr:
            problems.append(f"no warning with {case.warns!r}: {process.stderr.strip()[:200]}")
        return problems
    lines = process.stderr.strip().splitlines()
    errors = [line for line in lines if not line.startswith("stackmff: warning:")]
    if process.returncode == 0:
        problems.append("exit 0")
    if len(errors) != 1:
        problems.append(f"{len(errors)} error lines: {process.stderr.strip()[:300]}")
    elif case.expect and case.expect not in errors[0]:
        problems.append(f"error lacks {case.expect!r}: {errors[0][:200]}")
    if snapshot(folder) != before:
        changed = set(snapshot(folder).items()) ^ set(before.items())
        problems.append(f"files changed: {sorted(k for k, _ in changed)[:5]}")
    return problems


def interrupt_fuse(folder: Path, sig: int, delay: float) -> list[str]:
    """Send ``sig`` ``delay`` seconds into a run that writes three files."""
    stack = stack_folder(folder, n=6, size=(512, 512), colour=True)
    out = folder / "out"
    before = snapshot(folder)
    process = subprocess.Popen([PYTHON, "-m", "stackmff", "fuse", str(stack), "-o",
                                str(out / "fused.tif"), "--focus-map", str(out / "map.png"),
                                "--confidence", str(out / "conf.png")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    problems = ["traceback"] if "Traceback" in stderr else []
    written = {"fused.tif", "map.png", "map_indices.png", "conf.png"}
    present = {p.name for p in out.iterdir()} if out.exists() else set()
    if process.returncode == 0:
        if present != written:
            problems.append(f"exit 0 with {sorted(present)}")
    elif snapshot(folder) != before:
        problems.append(f"exit {process.returncode} left {sorted(present) or 'folders'}")
    return problems


def interrupt_training(folder: Path, sig: int, delay: float, resume: bool) -> list[str]:
    """An existing run, then a start that is interrupted ``delay`` seconds in."""
    config = existing_run(folder)
    run = folder / "run"
    kept = {p.name: p.read_bytes() for p in run.iterdir()}
    args = ["train", "--config", str(config)] + (["--resume"] if resume else [])
    process = subprocess.Popen([PYTHON, "-m", "stackmff", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    problems = ["traceback"] if "Traceback" in stderr else []
    if process.returncode == 0 and not resume:
        problems.append("exit 0")
    if not resume:
        now = {p.name: p.read_bytes() for p in run.iterdir()}
        if now != kept:
            problems.append("existing run changed")
    elif not (run / "last.pt").is_file() or not (run / "log.csv").is_file():
        problems.append("run lost its checkpoint or log")
    return problems


def batch_fault(folder: Path, fault: str) -> list[str]:
    """A batch of 6 stacks on 2 workers that meets ``fault``: SIGINT, SIGTERM or SIGKILL to
    its process group once its first stack is recorded (then resumed: the outputs must equal
    a clean run's), a full disk under OUTDIR, or an immutable report."""
    plate = batch_plate(folder, n=6)
    clean, out = folder / "clean", folder / "out"
    subprocess.run([PYTHON, "-m", "stackmff", "batch", str(plate), "-o", str(clean)],
                   capture_output=True, check=True)
    if fault == "full disk":
        out.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(out)], check=True)
    if fault == "immutable report":
        shutil.copytree(clean, out)
        subprocess.run(["chattr", "+i", str(out / "batch.jsonl")], check=True)
    command = [PYTHON, "-m", "stackmff", "batch", str(plate), "-o", str(out), "--workers", "2"]
    try:
        process = subprocess.Popen(command + (["--force"] if fault == "immutable report" else []),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        if fault.startswith("SIG"):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                    (out / "batch.jsonl").is_file() and (out / "batch.jsonl").stat().st_size):
                time.sleep(0.05)
            os.killpg(process.pid, getattr(signal, fault))
        _, stderr = process.communicate(timeout=120)
        problems = ["traceback"] if "Traceback" in stderr else []
        if process.returncode == 0:
            problems.append("exit 0")
        if fault != "SIGKILL" and list(out.rglob(".stackmff-*")):
            problems.append("temporaries left")  # a killed writer's go at the resume
    finally:
        if fault == "full disk":
            subprocess.run(["umount", str(out)], check=False)
        if fault == "immutable report":
            subprocess.run(["chattr", "-i", str(out / "batch.jsonl")], check=False)
    if fault.startswith("SIG"):
        resumed = subprocess.run(command, capture_output=True, text=True)
        if resumed.returncode != 0:
            problems.append(f"resume exit {resumed.returncode}")
        if list(out.rglob(".stackmff-*")):
            problems.append("temporaries left after the resume")
        names = sorted(p.name for p in clean.glob("*.png"))
        if any((out / n).read_bytes() != (clean / n).read_bytes() for n in names
               if (out / n).is_file()) or sorted(p.name for p in out.glob("*.png")) != names:
            problems.append("resumed outputs differ from a clean run's")
    return problems


def watch_fault(folder: Path, sig: int) -> list[str]:
    """``sig`` to a watch while it fuses a stack, with another stack open; then a restart,
    whose outputs must equal a clean watch's."""
    for name in ("A", "B"):
        stack_folder(folder / "shots", name, size=(256, 256), colour=True)
    clean, out = folder / "clean", folder / "out"
    args = watch_args(str(folder / "shots"), str(out), "--live", str(folder / "preview.jpg"))
    subprocess.run([PYTHON, "-m", "stackmff", *watch_args(str(folder / "shots"), str(clean))],
                   capture_output=True, check=True)
    process = subprocess.Popen([PYTHON, "-m", "stackmff", *args[:-2]], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("fusing"):
            break
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    problems = ["traceback"] if "Traceback" in stderr else []
    if process.returncode != 128 + sig:
        problems.append(f"exit {process.returncode}")
    if list(folder.rglob(".stackmff-*")):
        problems.append("temporaries left")
    resumed = subprocess.run([PYTHON, "-m", "stackmff", *args], capture_output=True, text=True)
    if resumed.returncode != 0:
        problems.append(f"restart exit {resumed.returncode}")
    names = sorted(p.name for p in clean.glob("*.png"))
    if sorted(p.name for p in out.glob("*.png")) != names or any(
            (out / n).read_bytes() != (clean / n).read_bytes() for n in names):
        problems.append("restarted outputs differ from a clean watch's")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", metavar="DIR", help="keep the case folders here")
    parser.add_argument("--strace", action="store_true",
                        help="run each case under strace: nothing outside its folder may be "
                             "written or removed")
    args = parser.parse_args()
    if args.strace and not write_trace.available():
        parser.error("--strace needs strace (apt install strace)")
    base = Path(args.keep or tempfile.mkdtemp(prefix="stackmff-hostile-"))
    base.mkdir(parents=True, exist_ok=True)
    results = []
    for i, case in enumerate(CASES):
        folder = base / f"case{i:02d}"
        folder.mkdir()
        results.append((case.name, run_case(case, folder, args.strace)))
    for sig in (signal.SIGINT, signal.SIGTERM):
        for delay in (0.5, 1.5, 2.5, 3.5):
            folder = base / f"fuse-{sig.name}-{delay}"
            folder.mkdir()
            results.append((f"fuse interrupted by {sig.name} after {delay} s",
                            interrupt_fuse(folder, sig, delay)))
        for resume in (False, True):
            for delay in (1.0, 4.0):
                folder = base / f"train-{sig.name}-{delay}-{resume}"
                folder.mkdir()
                results.append((f"train{' --resume' if resume else ''} interrupted by "
                                f"{sig.name} after {delay} s",
                                interrupt_training(folder, sig, delay, resume)))
    faults = ["SIGINT", "SIGTERM", "SIGKILL"]
    if os.geteuid() == 0:  # mounting a small file system and chattr need root
        faults += ["full disk", "immutable report"]
    for fault in faults:
        folder = base / f"batch-{fault.replace(' ', '-')}"
        folder.mkdir()
        results.append((f"batch: {fault}", batch_fault(folder, fault)))
    for sig in (signal.SIGINT, signal.SIGTERM):
        folder = base / f"watch-{sig.name}"
        folder.mkdir()
        results.append((f"watch: {sig.name} while fusing", watch_fault(folder, sig)))
    failed = 0
    for name, problems in results:
        failed += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '}  {name}" + (f": {'; '.join(problems)}"
                                                           if problems else ""))
    print(f"\n{len(results) - failed} of {len(results)} cases keep every promise")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
