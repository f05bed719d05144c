"""The methods' options are data: one table per method decides the checks of every value, the
command-line flags and the defaults."""

import argparse
import inspect

import pytest

import stackmff
from stackmff.cli import _build_parser, main
from stackmff.cli_options import method_options
from stackmff.errors import StackError
from stackmff.methods import get_method, list_methods


def flag_actions() -> dict:
    """``stackmff fuse``'s argparse actions by flag."""
    parser = _build_parser()
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
    args = _build_parser().parse_args(
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
    parser = _build_parser()
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
