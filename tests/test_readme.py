"""The README's commands run as written: every ``stackmff`` line of its ``sh`` blocks and its
Python example, each in a fresh folder holding the files they name (``shots/``, ``zstack.tif``,
``examples/pcb``, ``configs/``). Only what needs a GPU or hours of training is skipped; a
``watch`` ends by its ``--stop-when-idle``."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from stackmff.testing import make_stack
from stackmff.testing_camera import CAMERA_EXIF, dng_stack, heic_stack

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PROGRAMS = (".venv/bin/stackmff", "stackmff")
QUICK_CONFIGS = {"configs/smoke.toml"}      # training configs that finish in seconds
MIN_COMMANDS = 9                             # the README's runnable commands, at least


def blocks(text: str, language: str) -> list[str]:
    """The bodies of the fenced code blocks of one language."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def sh_commands(text: str) -> list[list[str]]:
    """Every ``stackmff`` command of the ``sh`` blocks as argv, comments and continuations
    resolved."""
    commands = []
    for block in blocks(text, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv and argv[0] in PROGRAMS:
                commands.append(argv[1:])
    return commands


def needs_gpu(args: list[str]) -> bool:
    return option(args, "--device") == "cuda"


def trains_long(args: list[str]) -> bool:
    return args[0] == "train" and option(args, "--config") not in QUICK_CONFIGS


def option(args: list[str], *names: str) -> str | None:
    """The value after the first of ``names`` in ``args``."""
    for name in names:
        if name in args:
            return args[args.index(name) + 1]
    return None


TEXT = README.read_text(encoding="utf-8")
COMMANDS = sh_commands(TEXT)
RUNNABLE = [args for args in COMMANDS if not needs_gpu(args) and not trains_long(args)]


def prepare(folder: Path) -> None:
    """The inputs the README's examples name, small: three 64x64 layers each (``raw/``: DNG
    files, ``phone/``: HEIC)."""
    layers, _, _ = make_stack(n_layers=3, height=64, width=64, colour=True, seed=3)
    shots = folder / "shots"
    shots.mkdir()
    for k, layer in enumerate(layers):
        Image.fromarray((layer * 255).round().astype(np.uint8)).save(
            shots / f"IMG_{k + 1:04d}.JPG", quality=95)
    grey, _, _ = make_stack(n_layers=3, height=64, width=64, colour=False, seed=4)
    with tifffile.TiffWriter(folder / "zstack.tif") as tif:    # 16-bit, one page per layer
        for page in (grey * 65535).round().astype(np.uint16):
            tif.write(page, photometric="minisblack")
    for well in ("A1", "A2"):                                  # a plate of two stacks
        wells, _, _ = make_stack(n_layers=3, height=64, width=64, seed=5)
        for k, layer in enumerate(wells):
            (folder / "plate" / well).mkdir(parents=True, exist_ok=True)
            Image.fromarray((layer * 255).round().astype(np.uint8)).save(
                folder / "plate" / well / f"{k}.png")
    dng_stack(folder / "raw", n_layers=3, height=64, width=64, exif=CAMERA_EXIF)
    heic_stack(folder / "phone", n_layers=3, height=48, width=64)
    (folder / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    (folder / "configs").symlink_to(ROOT / "configs", target_is_directory=True)


def promised_outputs(args: list[str]) -> list[str]:
    """The files a command says it writes."""
    if args[0] == "fuse":
        paths = [option(args, "-o", "--output")]
        focus_map = option(args, "--focus-map")
        if focus_map:
            paths += [focus_map, str(Path(focus_map).with_name(Path(focus_map).stem
                                                               + "_indices.png"))]
        confidence = option(args, "--confidence")
        mesh = option(args, "--mesh")
        if mesh and mesh.endswith(".obj"):
            paths += [mesh[:-4] + ".mtl", mesh[:-4] + "_texture.png"]
        return paths + ([confidence] if confidence else []) + ([mesh] if mesh else [])
    if args[0] == "regather":
        return [option(args, "-o", "--output")] + ([option(args, "--mesh")]
                                                   if "--mesh" in args else [])
    if args[0] == "align":
        out = option(args, "-o", "--output")
        return [f"{out}/transforms.json"] + [f"{out}/IMG_{k:04d}.JPG" for k in (1, 2, 3)]
    if args[0] == "batch":
        out = option(args, "-o", "--output")
        maps = ["A1_focus_map.png", "A1_focus_map_indices.png"] if "--focus-map" in args else []
        mesh = option(args, "--mesh")
        meshes = [f"A1.{mesh}", f"A2.{mesh}"] if mesh else []
        return [f"{out}/{name}" for name in ("A1.png", "A2.png", "batch.jsonl", *maps, *meshes)]
    if args[0] == "watch":
        live = option(args, "--live")
        return [f"{option(args, '-o', '--output')}/batch.jsonl"] + ([live] if live else [])
    if args[0] == "synth":
        return [f"{option(args, '-o', '--output')}/stack_000/focus_map.png"]
    if args[0] == "train":
        import tomllib

        config = tomllib.loads((ROOT / option(args, "--config")).read_text())
        return [f"{config['run']['out']}/last.pt", f"{config['run']['out']}/log.csv"]
    return []


def run(args: list[str], cwd: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    """The command as ``stackmff`` runs it (``stackmff.cli.main``), in this process so that
    the test pays torch's import once."""
    from stackmff.cli import main

    monkeypatch.chdir(cwd)
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_readme_links_and_paths_exist():
    """Every link of the README and its docs pages, and every repository path the README
    names in backticks, points at a file of the repository."""
    pages = [README, *sorted((ROOT / "docs").glob("*.md")),
             ROOT / "src/stackmff/weights/MODEL_CARD.md"]
    missing = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    for path in re.findall(r"`((?:src|docs|configs|scripts|benchmarks|examples)/[^`\s]+)`",
                           TEXT):
        if not (ROOT / path).exists():
            missing.append(f"README.md: {path}")
    assert not missing


def test_readme_has_enough_commands_to_test():
    assert len(RUNNABLE) >= MIN_COMMANDS, RUNNABLE
    assert len(blocks(TEXT, "python")) == 1
    assert {args[0] for args in RUNNABLE} >= {"fuse", "batch", "watch", "align", "methods",
                                              "synth", "train"}


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_readme_command_runs(args, tmp_path, monkeypatch, capsys):
    if trains_long(args):
        pytest.skip("trains for hours")
    if needs_gpu(args):
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU")
    prepare(tmp_path)
    code, stdout, stderr = run(args, tmp_path, monkeypatch, capsys)
    assert code == 0, stderr
    for path in promised_outputs(args):
        assert (tmp_path / path).is_file(), f"{path} not written"
    if args[0] == "methods":
        assert {"depthmap", "v3", "pyramid"} <= set(re.findall(r"^(\S+)", stdout, re.M))


def test_readme_library_example_runs(tmp_path, monkeypatch, capsys):
    prepare(tmp_path)
    code = blocks(TEXT, "python")[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    stdout = capsys.readouterr().out
    written = re.findall(r"\"([\w./]+\.(?:png|tif|jpg))\"", code)
    assert len(written) >= 4
    for path in written:
        assert (tmp_path / path).is_file(), f"{path} not written"
    assert "depthmap" in stdout
