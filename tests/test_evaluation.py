import os

import numpy as np
import pytest

from stackmff.evaluation.ranking import paired_difference, rank_methods
from stackmff.evaluation.runner import TIME, available_methods, run_stack
from stackmff.evaluation.suites import BenchStack, synthetic_stacks
from stackmff.testing import make_stack


def test_suite_builder_is_deterministic():
    first = [s for _, s in zip(range(4), synthetic_stacks(quick=True))]
    second = [s for _, s in zip(range(4), synthetic_stacks(quick=True))]
    for a, b in zip(first, second):
        assert (a.suite, a.variant, a.name) == (b.suite, b.variant, b.name)
        assert a.layers.tobytes() == b.layers.tobytes()
        assert a.focus_map.tobytes() == b.focus_map.tobytes()


def test_ranking_orders_methods_and_computes_the_critical_difference():
    rng = np.random.default_rng(0)
    scores = np.stack([np.array([30.0, 28.0, 25.0]) + rng.normal(0, 0.1, 3) for _ in range(12)])
    ranking = rank_methods(scores, ["a", "b", "c"])
    assert ranking.methods == ["a", "b", "c"] and ranking.mean_ranks == [1.0, 2.0, 3.0]
    assert ranking.test == "Friedman chi-square" and ranking.p < 0.001
    # Demsar (2006): q_0.05 = 2.343 for 3 methods; CD = q * sqrt(k (k + 1) / (6 N))
    assert ranking.critical_difference == pytest.approx(2.343 * np.sqrt(3 * 4 / 72), abs=1e-3)


def test_two_methods_are_compared_with_the_wilcoxon_test():
    rng = np.random.default_rng(0)
    better = rng.normal(30, 1, 20)
    ranking = rank_methods(np.stack([better, better - 0.5], axis=1), ["a", "b"])
    assert ranking.methods == ["a", "b"] and ranking.test == "Wilcoxon signed-rank"
    assert ranking.p < 0.001  # a wins on all 20 stacks
    tied = rank_methods(np.stack([better, better], axis=1), ["a", "b"])
    assert tied.p == 1.0 and tied.mean_ranks == [1.5, 1.5]


def test_paired_difference_gives_the_student_t_interval():
    gap = paired_difference(np.array([31.0, 32.0, 33.0]), np.array([30.0, 30.0, 30.0]))
    assert gap.mean == pytest.approx(2.0) and (gap.ahead, gap.behind) == (3, 0)
    half = 4.3027 * 1.0 / np.sqrt(3)  # t(0.975, 2 dof) * sd / sqrt(n)
    assert gap.low == pytest.approx(2.0 - half, abs=1e-3) and gap.high == pytest.approx(2.0 + half, abs=1e-3)
    one = paired_difference(np.array([30.0]), np.array([31.0]))
    assert one.mean == -1.0 and np.isnan(one.low) and (one.ahead, one.behind) == (0, 1)


def test_runner_scores_a_method_and_the_bounds(tmp_path):
    layers, truth, focus_map = make_stack(n_layers=3, colour=True)
    stack = BenchStack("test", "N=3", "bands", layers, truth, focus_map)
    results = run_stack(stack, available_methods(["depthmap"], None))
    by_method = {r.method: r for r in results}
    assert set(by_method) == {"depthmap", "(bound) true map", "(bound) best layer"}
    ours = by_method["depthmap"]
    assert not ours.error and ours.seconds > 0
    if os.path.exists(TIME):  # peak memory needs GNU time
        assert 20 < ours.peak_mb < 4000
    assert ours.map_exact > 0.9 and 0 < ours.qabf <= 1
    assert by_method["(bound) true map"].psnr >= ours.psnr - 0.01
    assert by_method["(bound) best layer"].psnr >= ours.psnr - 0.01


def test_unknown_methods_are_refused():
    with pytest.raises(ValueError, match="not available"):
        available_methods(["nonesuch"], None)


def test_validation_scenes_are_held_out_of_training():
    from stackmff.data.sources import (
        DEBIAN_TRAIN_PHOTOS,
        DEBIAN_VALIDATION_PHOTOS,
        TRAIN_PHOTOS,
        VALIDATION_PHOTOS,
    )
    from stackmff.evaluation.suites import held_out_scenes

    assert not set(VALIDATION_PHOTOS) & set(TRAIN_PHOTOS)
    assert not set(DEBIAN_VALIDATION_PHOTOS) & set(DEBIAN_TRAIN_PHOTOS)
    scenes = held_out_scenes()
    assert set(VALIDATION_PHOTOS) <= set(scenes) and "motorcycle" not in scenes
    assert all(s.image.shape[:2] == s.depth.shape == (256, 320) for s in scenes.values())


def test_report_names_its_suites_and_the_test_it_ranks_with(tmp_path):
    from stackmff.evaluation.report import write_report
    from stackmff.evaluation.runner import RunResult

    results = [RunResult("validation", "N=2", f"scene{i}", method, 2, 1.0, 100.0, psnr=psnr)
               for i in range(6) for method, psnr in (("v3", 30.0 + i), ("depthmap", 29.5 + i))]
    out = tmp_path / "report.md"
    write_report(results, ["v3", "depthmap"], out, "stackmff bench --suite validation", [])
    text = out.read_text()
    assert text.startswith("# Benchmarks: validation\n")
    assert "Wilcoxon signed-rank" in text and "nan" not in text
    assert "| v3 | 1.00 |" in text and "| depthmap | 2.00 |" in text
    # v3 is 0.5 dB ahead on every scene: the interval collapses onto the mean
    assert "| validation | N=2 | v3 | depthmap | +0.500 | +0.500 .. +0.500 | 6 / 0 |" in text


FAKE_OPENFOCUS = """#!{python}
# stands in for openfocus: `--cpu [flags] -i FOLDER -o OUT`; writes the folder's first layer
# as RGB, as openfocus writes grey stacks, and its flags next to it
import sys, pathlib, cv2
args = sys.argv[1:]
folder, out = pathlib.Path(args[args.index("-i") + 1]), args[args.index("-o") + 1]
first = sorted(folder.iterdir())[0]
cv2.imwrite(out, cv2.cvtColor(cv2.imread(str(first), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR))
pathlib.Path(out + ".args").write_text(" ".join(args))
"""


def test_openfocus_runs_as_its_own_process_on_the_layer_folder(tmp_path, monkeypatch):
    import sys

    program = tmp_path / "openfocus"
    program.write_text(FAKE_OPENFOCUS.format(python=sys.executable))
    program.chmod(0o755)
    monkeypatch.setenv("STACKMFF_OPENFOCUS", str(program))
    methods = available_methods(["depthmap", "openfocus", "openfocus-nomatch",
                                 "openfocus-hard"], None)
    assert [m.name for m in methods][1:] == ["openfocus", "openfocus-nomatch", "openfocus-hard"]
    assert methods[3].command[1:] == ("--cpu", "--no-exposure-match", "--ai-mode", "hard")
    layers, truth, focus_map = make_stack(n_layers=3)
    results = {r.method: r for r in run_stack(BenchStack("t", "N=3", "bands", layers, truth,
                                                         focus_map), methods)}
    for name in ("openfocus", "openfocus-nomatch", "openfocus-hard"):
        assert not results[name].error and results[name].seconds > 0
    # the fake wrote layer 0, read back as grey: its score is layer 0's
    from stackmff.metrics import psnr

    assert results["openfocus"].psnr == pytest.approx(psnr(layers[0], truth), abs=0.05)
    assert results["depthmap"].psnr > results["openfocus"].psnr


def test_report_says_when_openfocus_is_absent(monkeypatch, tmp_path):
    from stackmff.evaluation.report import peer_versions

    monkeypatch.setenv("STACKMFF_OPENFOCUS", str(tmp_path / "missing"))
    assert "openfocus not installed" in peer_versions()
    assert not [m for m in available_methods(None, None) if m.name.startswith("openfocus")]


def test_the_network_has_a_row_per_blend():
    names = [m.name for m in available_methods(None, None)]
    assert names[:4] == ["v3", "v3-soft", "v3-band", "v3-soft2"]
    soft2 = available_methods(["v3-soft2"], None)[0].command
    assert soft2[-4:] == ("--blend", "soft", "--blend-scales", "1,0.75")


def test_a_quick_run_has_one_row_per_family_and_the_variants_when_named():
    every = [m.name for m in available_methods(None, None)]
    quick = [m.name for m in available_methods(None, None, variants=False)]
    assert "v3" in quick and "depthmap" in quick
    assert not {"v3-soft", "v3-band", "v3+", "v3+-band", "openfocus-hard"} & set(quick)
    assert set(quick) < set(every) and len(quick) < len(every) - 6
    named = available_methods(["v3+-band", "v3-soft"], None, variants=False)
    assert [m.name for m in named] == ["v3-soft", "v3+-band"]
