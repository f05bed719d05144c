"""The methods' options are data: one table per method decides the checks of every value, the
command-line flags and the defaults, and the registry alone says whether a method copies
pixels (for napari's session and for Dask arrays alike)."""

import argparse
import inspect

import numpy as np
import pytest

import stackmff
from stackmff import methods
from stackmff.cli import main
from stackmff.cli_options import method_options
from stackmff.cli_parser import build_parser
from stackmff.errors import StackError
from stackmff.io.pixels import from_float
from stackmff.methods import FusionMethod, get_method, list_methods
from stackmff.result import FusionResult
from stackmff.stack_ops import gather
from stackmff.testing import make_stack


def flag_actions() -> dict:
    """``stackmff fuse``'s argparse actions by flag."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    fuse = commands.choices["fuse"]
    return {flag: action for action in fuse._actions for flag in action.option_strings}


def test_every_option_of_every_table_is_a_flag_as_declared():
    actions = flag_actions()
    flagged = 0
    for method in list_methods():
        for option in method.options:
            if option.flag_name is None:
                assert all(a.dest != option.name for a in actions.values()), option.name
                continue
            action = actions[option.flag_name]
            assert action.dest == option.name and action.default is argparse.SUPPRESS
            assert option.help in action.help
            if option.choices:
                assert tuple(action.choices) == option.choices
            elif option.type is bool:
                assert action.nargs == 0 and action.const is (not option.default)
            else:
                assert action.metavar == option.metavar
            flagged += 1
    assert flagged >= 10  # the network's flags, for v3 and v3+
    assert actions["--tile-margin"].dest == "margin"
    assert actions["--tile-local-means"].dest == "global_means"
    assert "--native" not in actions  # a table option without a flag


def test_the_flags_give_the_method_options_the_tables_name():
    args = build_parser().parse_args(
        ["fuse", "in", "-o", "out.png", "-m", "v3", "--tile", "0", "--tile-margin", "16",
         "--tile-local-means", "--blend-scales", "1,0.75", "--precision", "bf16"])
    assert method_options(args) == {"tile": None, "margin": 16, "global_means": False,
                                    "blend_scales": (1.0, 0.75), "precision": "bf16"}


@pytest.mark.parametrize("value", [100000, -1])
def test_an_out_of_range_value_is_refused_alike_by_the_cli_and_the_library(capsys, value):
    with pytest.raises(SystemExit) as stopped:
        main(["fuse", "in", "-o", "out.png", "-m", "v3", "--tile-margin", str(value)])
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    rule = f"must be an integer from 0 to 1024, got {value}"
    assert line == f"stackmff: error: argument --tile-margin: {rule} (see 'stackmff fuse --help')"
    with pytest.raises(StackError) as refused:
        stackmff.prepare_method("v3", margin=value)
    assert str(refused.value) == f"tile margin {rule}"
    from stackmff.fusion.predictor import StackFuser

    with pytest.raises(StackError) as direct:  # the public fuser: the same check, same line
        StackFuser(None, margin=value)
    assert str(direct.value) == str(refused.value)


@pytest.mark.parametrize("options, message", [
    ({"device": "gpu"}, "device must be one of cpu, cuda, got 'gpu'"),
    ({"precision": "fp8"}, "precision must be one of fp32, bf16, fp16, got 'fp8'"),
    ({"tile": 5}, "tile must be 'auto', None or an integer of at least 32, got 5"),
    ({"tile": True}, "tile must be 'auto', None or an integer of at least 32, got True"),
    ({"global_means": 1}, "global means must be True or False, got 1"),
    ({"checkpoint": 3}, "checkpoint must be a path, got 3"),
    ({"blend_sigma": "wide"}, "blend sigma must be a number, got 'wide'"),
    ({"blend_scales": "1,0.75"}, "blend scales must be a list of numbers, got '1,0.75'"),
])
def test_the_library_refuses_a_value_its_option_does_not_take_in_one_line(options, message):
    with pytest.raises(StackError) as refused:
        stackmff.prepare_method("v3", **options)
    assert str(refused.value) == message


def test_tile_0_runs_in_one_pass_and_no_flag_means_the_default():
    parser = build_parser()
    one_pass = parser.parse_args(["fuse", "in", "-o", "out.png", "-m", "v3", "--tile", "0"])
    assert method_options(one_pass) == {"tile": None}
    plain = parser.parse_args(["fuse", "in", "-o", "out.png", "-m", "v3"])
    assert method_options(plain) == {}


def test_the_tile_is_read_as_the_table_says(capsys):
    with pytest.raises(SystemExit):
        main(["fuse", "in", "-o", "out.png", "-m", "v3", "--tile", "5"])
    assert capsys.readouterr().err.startswith(
        "stackmff: error: argument --tile: must be auto, 0 or an integer of at least 32, got 5")


def test_a_flag_of_v3_plus_given_to_v3_names_the_method_that_takes_it(capsys):
    code = main(["fuse", "in", "-o", "out.png", "-m", "v3", "--head", "head.pt"])
    assert code == 1
    assert capsys.readouterr().err.strip() == (
        "stackmff: error: --head applies to --method v3+ only, not to --method v3")


def test_v3_plus_takes_the_options_of_v3_and_its_head():
    network, refined = get_method("v3").options, get_method("v3+").options
    assert set(refined.names) == set(network.names) | {"head"}
    assert all(refined.get(o.name) == o for o in network)
    assert get_method("depthmap").options == ()


def test_the_functions_behind_the_tables_default_as_the_tables_say():
    from stackmff.fusion.blend import Blend
    from stackmff.fusion.network_method import prepare_network
    from stackmff.fusion.predictor import PRECISION_DTYPES, StackFuser

    table = get_method("v3").options
    for function in (prepare_network, StackFuser):
        for name, parameter in inspect.signature(function).parameters.items():
            if name in table and not (function is StackFuser and name == "blend"):
                assert parameter.default == table.get(name).default, (function, name)
    assert Blend().mode == table.get("blend").default  # StackFuser's blend=None
    assert set(PRECISION_DTYPES) == set(table.get("precision").choices)


def test_an_option_declared_differently_by_two_methods_is_refused():
    from stackmff.option_table import Option, merged_tables

    tile = Option("tile", int, "auto", help="a")
    with pytest.raises(ValueError, match="declared differently"):
        merged_tables([(tile,), (Option("tile", int, 64, help="a"),)])


# copies pixels: the registry's answer, wherever it is asked ----------------------------------


def mean_fuser(layers: np.ndarray) -> FusionResult:
    """A stand-in method whose fused image is no gather of its map (layer 0 everywhere)."""
    layers = np.asarray(layers, np.float32)
    return FusionResult(layers.mean(axis=0), np.zeros(layers.shape[1:3], np.uint16), None,
                        "stand-in")


@pytest.fixture(params=[True, False], ids=["copies", "blends"])
def stand_in(request, monkeypatch) -> tuple[str, bool]:
    """A method registered for the test, declaring that it copies pixels or not."""
    list_methods()  # the built-in methods first, so this one is not registered before them
    name = "stand-in"
    monkeypatch.setitem(methods._METHODS, name, FusionMethod(
        name, "test only", prepare=lambda: mean_fuser, selects=request.param))
    return name, request.param


def test_napari_session_keeps_the_source_pixels_only_where_the_registry_says_so(stand_in):
    from stackmff.napari.session import fuse_layer

    name, copies = stand_in
    data = from_float(make_stack(n_layers=3, height=32, width=32, colour=True)[0], np.uint8)
    session = run_to_end(fuse_layer(data, name))
    if copies:
        np.testing.assert_array_equal(session.fused, data[0])
    else:
        np.testing.assert_array_equal(session.fused, session.scale.from_unit(
            mean_fuser(session.scale.to_unit(data)).fused))
        assert not np.array_equal(session.fused, data[0])


def test_a_dask_array_is_gathered_only_where_the_registry_says_the_method_copies(stand_in):
    da = pytest.importorskip("dask.array")
    name, copies = stand_in
    layers = make_stack(n_layers=3, height=32, width=32)[0]
    result = stackmff.fuse_stack(da.from_array(layers, chunks=(1, 16, 16)), name)
    expected = layers[0] if copies else layers.mean(axis=0)
    np.testing.assert_allclose(result.fused, expected, atol=1e-6)


def test_v3_with_a_soft_blend_is_not_treated_as_copying_in_napari():
    from stackmff.napari.session import fuse_layer

    assert not get_method("v3").copies_pixels(blend="soft")
    data = from_float(make_stack(n_layers=3, height=32, width=32, colour=True)[0], np.uint8)
    session = run_to_end(fuse_layer(data, "v3", options={"blend": "soft"}))
    result = stackmff.prepare_method("v3", blend="soft")(session.scale.to_unit(data))
    np.testing.assert_array_equal(session.fused, session.scale.from_unit(result.fused))
    assert not np.array_equal(session.fused, gather(data, session.focus_map))


def run_to_end(generator):
    """The value a generator returns (what napari's worker hands to ``returned``)."""
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value
