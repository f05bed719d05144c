"""A batch never takes its own results for input: OUTDIR inside an input folder is left out
of the search, and OUTDIR as the input folder itself is refused."""

from stackmff.cli import main
from stackmff.testing import make_stack, write_stack


def plate(root):
    for name, seed in (("A1", 1), ("B2", 2)):
        write_stack(root / name, make_stack(3, 32, 40, seed=seed)[0])
    return root


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_results_inside_the_input_folder_are_not_fused_on_the_next_run(tmp_path, capsys):
    root = plate(tmp_path / "plate")
    out = root / "fused"
    assert main(["batch", str(root), "-o", str(out), "--workers", "1"]) == 0
    assert main(["batch", str(root), "-o", str(out), "--workers", "1"]) == 0
    assert files_under(out) == ["A1.png", "B2.png", "batch.jsonl"]
    assert "left out 1 stack(s) inside the output folder" in capsys.readouterr().err


def test_the_input_folder_as_outdir_is_refused_and_nothing_is_written(tmp_path, capsys):
    root = plate(tmp_path / "plate")
    before = files_under(root)
    assert main(["batch", str(root), "-o", str(root), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is the input folder" in err
    assert files_under(root) == before
