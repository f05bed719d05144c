"""stackmff batch: many stacks, the same bytes as single runs, resumable, failures recorded."""

import json
from pathlib import Path

import pytest

from stackmff.batch import find_stacks, fuse_many
from stackmff.batch.local import run_local
from stackmff.batch.work import BatchOptions
from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.testing import make_stack, write_stack


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def plate(tmp_path) -> Path:
    """Six small stacks in a two-level tree, and one whose files are corrupt."""
    root = tmp_path / "plate"
    for k in range(6):
        layers, _, _ = make_stack(n_layers=3, height=40, width=48, colour=k % 2 == 1, seed=k)
        write_stack(root / f"row{k // 3}" / f"well{k}", layers)
    bad = root / "row1" / "broken"
    bad.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (bad / name).write_bytes(b"not a png")
    return root


def report(outdir: Path) -> list[dict]:
    return [json.loads(line) for line in (outdir / "batch.jsonl").read_text().splitlines()]


def test_stacks_are_found_and_named_after_the_input_tree(plate):
    names = sorted(task.name for task in find_stacks([plate]))
    assert names == ["row0/well0", "row0/well1", "row0/well2", "row1/broken", "row1/well3",
                     "row1/well4", "row1/well5"]


def test_batch_equals_single_runs_byte_for_byte_and_records_the_failure(plate, tmp_path,
                                                                          capsys):
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, "batch", plate, "-o", out, "--workers", "2", "--focus-map",
                          "--confidence")
    assert code == 1
    assert "6 fused, 0 skipped (outputs present), 1 failed" in stdout
    assert "failed: row1/broken" in stdout
    for task in find_stacks([plate]):
        if task.name == "row1/broken":
            continue
        single = tmp_path / "single" / task.name
        assert run(capsys, "fuse", task.inputs[0], "-o", f"{single}.png", "--focus-map",
                   f"{single}_focus_map.png", "--confidence", f"{single}_confidence.png")[0] == 0
        for suffix in (".png", "_focus_map.png", "_focus_map_indices.png", "_confidence.png"):
            produced = Path(f"{out / task.name}{suffix}")
            assert produced.read_bytes() == Path(f"{single}{suffix}").read_bytes(), produced
    lines = report(out)
    assert sorted(line["status"] for line in lines) == ["failed"] + ["ok"] * 6
    failed = next(line for line in lines if line["status"] == "failed")
    assert failed["name"] == "row1/broken" and "cannot decode" in failed["error"]
    ok = next(line for line in lines if line["status"] == "ok")
    assert ok["layers"] == 3 and (ok["width"], ok["height"]) == (48, 40)
    assert ok["seconds"] >= 0 and ok["peak_memory_mb"] > 0
    assert not (out / "row1" / "broken.png").exists()


def test_second_run_skips_what_exists_and_retries_only_the_failure(plate, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "batch", plate, "-o", out, "--workers", "1")[0] == 1
    before = {name: (out / name).stat().st_mtime_ns for name in files_in(out)
              if name.endswith(".png")}
    code, stdout, _ = run(capsys, "batch", plate, "-o", out, "--workers", "1")
    assert code == 1 and "0 fused, 6 skipped (outputs present), 1 failed" in stdout
    assert {name: (out / name).stat().st_mtime_ns for name in before} == before
    second = report(out)[7:]
    assert sorted(line["status"] for line in second) == ["failed"] + ["skipped"] * 6
    code, stdout, _ = run(capsys, "batch", plate, "-o", out, "--workers", "1", "--force")
    assert "6 fused, 0 skipped" in stdout


def test_dask_local_cluster_gives_the_same_bytes(plate, tmp_path, capsys):
    local, cluster = tmp_path / "local", tmp_path / "dask"
    assert run(capsys, "batch", plate, "-o", local, "--workers", "2")[0] == 1
    code, stdout, stderr = run(capsys, "batch", plate, "-o", cluster, "--workers", "2",
                               "--dask", "local")
    assert code == 1 and "6 fused" in stdout and "Dask dashboard at http" in stderr
    images = {name for name in files_in(local) if name.endswith(".png")}
    assert len(images) == 6 and images == {n for n in files_in(cluster) if n.endswith(".png")}
    for name in images:
        assert (local / name).read_bytes() == (cluster / name).read_bytes(), name


def test_a_worker_that_dies_is_replaced_and_its_stack_retried(tmp_path):
    from batch_work import always_die, die_on_first_try

    tasks = []
    for name in ("first", "doomed", "last"):
        layers, _, _ = make_stack(n_layers=2, height=32, width=32)
        write_stack(tmp_path / "in" / name, layers)
    tasks = find_stacks([tmp_path / "in"])
    options = BatchOptions()
    results = {r.name: r for r in run_local(tasks, tmp_path / "out", options, 2, {},
                                            work=die_on_first_try)}
    assert {name: r.status for name, r in results.items()} == {
        "first": "ok", "doomed": "ok", "last": "ok"}
    assert results["doomed"].attempts == 2
    results = {r.name: r for r in run_local(tasks, tmp_path / "out2", options, 2, {},
                                            work=always_die)}
    assert results["doomed"].status == "failed" and results["doomed"].attempts == 2
    assert "worker died" in results["doomed"].error
    assert results["first"].status == results["last"].status == "ok"


@pytest.mark.parametrize("case, message", [
    ("empty folder", "no stack found in"),
    ("output is a file", "is a file"),
    ("output under a file", "not writable"),
    ("unknown method", "unknown fusion method"),
    ("confidence from pyramid", "produces no confidence map"),
])
def test_bad_input_is_one_line_and_writes_nothing(plate, tmp_path, capsys, case, message):
    inputs, out, extra = [plate], tmp_path / "out", []
    if case == "empty folder":
        inputs = [tmp_path / "empty"]
        inputs[0].mkdir()
    elif case == "output is a file":
        out.write_text("x")
    elif case == "output under a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out"
    elif case == "unknown method":
        extra = ["-m", "magic"]
    else:
        extra = ["-m", "pyramid", "--confidence"]
    before = files_in(tmp_path)
    code, _, stderr = run(capsys, "batch", *inputs, "-o", out, *extra)
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stackmff: error:") and message in lines[0]
    assert files_in(tmp_path) == before


def test_an_unreachable_scheduler_is_reported_without_hanging(plate, tmp_path, monkeypatch):
    import stackmff.batch.cluster as cluster

    monkeypatch.setattr(cluster, "CONNECT_DEADLINE", 1.0)
    with pytest.raises(StackError, match="cannot reach a Dask scheduler at tcp://127.0.0.1:9"):
        fuse_many([plate], tmp_path / "out", client="tcp://127.0.0.1:9")
    assert not (tmp_path / "out").exists()


def test_a_dask_array_is_fused_as_the_network_tiles_it(tiny_config, tmp_path):
    """Blocks as tiles, each with its own margin of context: the same focus map and pixels as
    the single-process tiling with the same tiles."""
    import dask.array as da
    import torch

    from stackmff import fuse_stack
    from stackmff.fusion import StackFuser
    from stackmff.model import StackMFFV3
    from stackmff.weights.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = StackMFFV3(tiny_config).eval()
    save_checkpoint(tmp_path / "tiny.pt", model)
    layers, _, _ = make_stack(n_layers=3, height=96, width=96, colour=True)
    lazy = da.from_array(layers, chunks=(1, 48, 48, 3))
    result = fuse_stack(lazy, "v3", checkpoint=tmp_path / "tiny.pt", margin=16)
    tiled = StackFuser(model, tile=48, margin=16, global_means=False).fuse(layers)
    assert (result.focus_map == tiled.focus_map).all()
    assert (result.fused == tiled.fused).all()
    assert result.confidence is not None


def test_a_dask_array_with_a_classical_method_gathers_its_layers():
    import dask.array as da
    import numpy as np

    from stackmff import fuse_stack, gather

    layers, _, focus_map = make_stack(n_layers=4, height=64, width=80)
    result = fuse_stack(da.from_array(layers, chunks=(4, 32, 40)), "depthmap")
    assert result.fused.shape == (64, 80)
    assert np.array_equal(result.fused, gather(layers, result.focus_map))
    assert np.mean(result.focus_map == focus_map) > 0.9


def test_linked_stack_folders_are_found_once(tmp_path):
    layers, _, _ = make_stack(n_layers=2, height=32, width=32)
    write_stack(tmp_path / "data" / "a", layers)
    (tmp_path / "plate").mkdir()
    (tmp_path / "plate" / "a").symlink_to(tmp_path / "data" / "a")
    (tmp_path / "plate" / "loop").symlink_to(tmp_path / "plate")
    assert [task.name for task in find_stacks([tmp_path / "plate"])] == ["a"]
