"""The seams of the architecture: which packages import which, and a golden result that a
move of code must not change."""

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

import stackmff

EXAMPLE = Path(__file__).parents[1] / "examples" / "pcb"
GOLDEN = Path(__file__).parent / "golden"
PACKAGE = Path(stackmff.__file__).parent


def imports_of_modules(module_level_only: bool = False) -> dict[str, set[str]]:
    """Every stackmff module and the stackmff modules it imports (at module level only, or
    anywhere, lazy imports in functions included), read from the source."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        statements = tree.body if module_level_only else ast.walk(tree)
        imported = set()
        for statement in statements:
            if isinstance(statement, ast.Import):
                imported |= {alias.name for alias in statement.names}
            elif isinstance(statement, ast.ImportFrom) and statement.level == 0 \
                    and statement.module:
                imported.add(statement.module)
        found[name] = {m for m in imported if m.startswith("stackmff.")}
    return found


def package_of(module: str) -> str:
    """``stackmff.io.image`` -> ``io``; a top-level module is its own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_cycle(module_level_only: bool) -> list[str] | None:
    """A cycle in the graph of packages that import each other, or ``None``."""
    graph = defaultdict(set)
    for module, imported in imports_of_modules(module_level_only).items():
        for other in imported:
            if package_of(module) != package_of(other):
                graph[package_of(module)].add(package_of(other))
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [])):
            return cycle
    return None


def test_no_import_cycle_between_packages():
    """Packages import downward only: neither at module level nor in a lazy import."""
    assert package_cycle(module_level_only=True) is None
    assert package_cycle(module_level_only=False) is None


def test_the_cycle_check_finds_a_cycle(monkeypatch):
    """The check above can fail: one upward import makes it report the loop."""
    real = imports_of_modules

    def with_upward_import(module_level_only=False):
        found = real(module_level_only)
        found["stackmff.io.image"] = found["stackmff.io.image"] | {"stackmff.pipeline"}
        return found

    monkeypatch.setitem(globals(), "imports_of_modules", with_upward_import)
    cycle = package_cycle(module_level_only=True)
    assert cycle is not None and "io" in cycle and "pipeline" in cycle


# The layers of the package, lowest first (docs/layout.md draws them): a package imports
# from its own layer or the ones below, never from above.
LAYERS = (
    ("errors", "progress", "option_table"),
    ("io",),                                              # files: images, TIFF, writes
    ("stack_ops", "microscopy", "metrics", "model"),      # stacks, formats, measures, net
    ("result", "registration", "runtime", "weights"),
    ("methods",),                                         # the registry
    ("classical", "fusion", "retouch", "channel_rule", "surface", "outputs"),
    ("pipeline", "regather"),                             # the one path, files to files
    ("api",),
    ("stackmff", "__main__", "cli", "cli_parser", "cli_options", "batch", "watch", "napari",
     "data", "training", "evaluation", "testing", "testing_camera"),  # front ends and tools
)
FRONT_ENDS = ("cli", "cli_parser", "cli_options", "batch", "watch", "napari")


def layer_of(package: str) -> int:
    for level, members in enumerate(LAYERS):
        if package in members:
            return level
    raise AssertionError(f"package {package!r} has no layer in LAYERS (and docs/layout.md)")


def test_packages_import_from_their_own_layer_or_below():
    upward = sorted(f"{module} -> {other}" for module, imported in imports_of_modules().items()
                    for other in imported
                    if layer_of(package_of(other)) > layer_of(package_of(module)))
    assert not upward


def test_front_ends_take_method_options_from_the_registry_not_from_fusion():
    """The command line, napari and batch know a method's options from its registry entry
    only: nothing of the network's own modules."""
    found = sorted(f"{module} -> {other}" for module, imported in imports_of_modules().items()
                   for other in imported
                   if package_of(module) in FRONT_ENDS and other.startswith("stackmff.fusion"))
    assert not found


# what the format packages may not know of: methods, the network, the pipeline and the API
# above them, the front ends, and the allocator
ABOVE_FORMATS = ("stackmff.methods", "stackmff.classical", "stackmff.fusion", "stackmff.model",
                 "stackmff.pipeline", "stackmff.api", "stackmff.outputs", "stackmff.batch",
                 "stackmff.napari", "stackmff.cli", "stackmff.runtime", "stackmff.channel_rule")


@pytest.mark.parametrize("package", ["io", "microscopy"])
def test_format_packages_read_and_write_files_and_know_nothing_above(package):
    imports = imports_of_modules()
    for module, imported in imports.items():
        if package_of(module) == package:
            above = sorted(m for m in imported if m.startswith(ABOVE_FORMATS))
            assert not above, f"{module} imports {above}"


def modules_after(statement: str) -> set[str]:
    """The stackmff and heavy third-party modules a fresh interpreter holds after
    ``statement``."""
    program = (f"{statement}\nimport sys\n"
               "print('\\n'.join(m for m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", program], check=True, capture_output=True,
                            text=True).stdout
    return set(output.split())


# what fusing never needs: training, benchmarking, synthetic scenes, the test helpers
INFERENCE_ONLY = ("stackmff.training", "stackmff.evaluation", "stackmff.data",
                  "stackmff.testing")
# the camera extras' libraries: only a camera file (or a layer with metadata) needs them
CAMERA_LIBRARIES = {"rawpy", "pillow_heif", "pyexiv2"}


def test_import_stackmff_and_the_classical_methods_do_not_import_torch_or_dask():
    loaded = modules_after("import numpy as np, stackmff, stackmff.batch\n"
                           "stackmff.fuse_stack(np.random.rand(2, 32, 32).astype('f4'), "
                           "'pyramid')")
    assert not {"torch", "dask", "distributed", "napari", "zarr", "watchdog"} & loaded
    assert not any(m.startswith(INFERENCE_ONLY) for m in loaded)


def test_import_stackmff_and_a_jpeg_fuse_do_not_import_the_camera_libraries(tmp_path):
    """LibRaw, libheif and Exiv2 are imported for camera files and for layers that carry
    metadata, never for ``import stackmff`` or a stack of plain JPEGs."""
    from stackmff.testing import make_stack, write_stack

    assert not CAMERA_LIBRARIES & modules_after("import stackmff")
    write_stack(tmp_path / "stack", make_stack(3, 32, 40, colour=True)[0], suffix=".jpg")
    loaded = modules_after(
        "from stackmff.cli import main\n"
        f"assert main(['fuse', {str(tmp_path / 'stack')!r}, '-q', "
        f"'-o', {str(tmp_path / 'out.jpg')!r}]) == 0")
    assert (tmp_path / "out.jpg").exists()
    assert "stackmff.io.metadata" in loaded  # the path that would carry metadata ran
    assert not CAMERA_LIBRARIES & {m.split(".")[0] for m in loaded}
def test_import_stackmff_and_a_plain_fuse_do_not_import_trimesh(tmp_path):
    """trimesh (the mesh extra) is imported only when a mesh is written."""
    from stackmff.testing import make_stack, write_stack

    write_stack(tmp_path / "stack", make_stack(3, 32, 40, colour=True)[0])
    loaded = modules_after(
        "import stackmff, stackmff.cli, stackmff.batch, stackmff.surface\n"
        f"stackmff.fuse_files({str(tmp_path / 'stack')!r}, {str(tmp_path / 'o.png')!r})")
    assert "stackmff.outputs" in loaded and "stackmff.surface" in loaded
    assert "trimesh" not in loaded
    with_mesh = modules_after(
        "import stackmff\n"
        f"stackmff.fuse_files({str(tmp_path / 'stack')!r}, {str(tmp_path / 'o.png')!r}, "
        f"mesh={str(tmp_path / 'o.ply')!r})")
    assert "trimesh" in with_mesh  # the check above means something


def test_microscopy_tiffs_fuse_without_zarr(tmp_path):
    """zarr (the microscopy extra) is imported only for OME-Zarr."""
    path = tmp_path / "z.ome.tif"
    loaded = modules_after(
        "import numpy as np, tifffile, stackmff\n"
        f"tifffile.imwrite({str(path)!r}, np.zeros((1, 2, 3, 16, 16), 'u2'), ome=True, "
        "metadata={'axes': 'TCZYX'})\n"
        f"stackmff.fuse_files({str(path)!r}, {str(tmp_path / 'o.ome.tif')!r})")
    assert "stackmff.microscopy.ome_tiff" in loaded  # the microscopy reader ran
    assert not {"zarr", "torch", "dask", "xarray"} & loaded


def test_the_command_line_imports_only_what_the_chosen_method_needs(tmp_path):
    """A classical fuse pays for neither torch nor SciPy nor PyWavelets (their imports alone
    take longer than the fusion of a small stack)."""
    from stackmff.testing import make_stack, write_stack

    write_stack(tmp_path / "stack", make_stack(3, 32, 40, colour=True)[0])
    loaded = modules_after(
        "from stackmff.cli import main\n"
        f"assert main(['fuse', {str(tmp_path / 'stack')!r}, '-m', 'depthmap', '-q', "
        f"'-o', {str(tmp_path / 'out.png')!r}]) == 0")
    assert (tmp_path / "out.png").exists()
    assert not {"torch", "scipy", "pywt", "dask", "watchdog"} & {m.split(".")[0] for m in loaded}


def test_inference_never_imports_training_evaluation_or_data():
    loaded = modules_after("import stackmff, stackmff.cli, stackmff.registration\n"
                           "stackmff.prepare_method('v3')")
    assert "torch" in loaded  # the network was loaded: the check below means something
    assert not any(m.startswith(INFERENCE_ONLY) for m in loaded), \
        sorted(m for m in loaded if m.startswith("stackmff"))


@pytest.mark.parametrize("method", ["depthmap", "v3"])
def test_the_bundled_example_fuses_as_it_always_has(method):
    """examples/pcb against focus maps stored by the release before the package moves: the
    same layer for (nearly) every pixel, and the fused image is the gather of that map."""
    stack = stackmff.load_stack(EXAMPLE)
    result = stackmff.fuse_stack(stack, method)
    golden = cv2.imread(str(GOLDEN / f"pcb_{method}_focus_map.png"), cv2.IMREAD_UNCHANGED)
    agreement = np.mean(result.focus_map == golden)
    # depthmap is exact; the network may differ at near-ties on other CPUs
    assert agreement >= (1.0 if method == "depthmap" else 0.995)
    assert np.array_equal(result.fused, stackmff.gather(stack.layers, result.focus_map))
