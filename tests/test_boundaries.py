"""The seams of the architecture: which packages import which, and a golden result that a
move of code must not change."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import stackmff

EXAMPLE = Path(__file__).parents[1] / "examples" / "pcb"
GOLDEN = Path(__file__).parent / "golden"


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


def test_import_stackmff_and_the_classical_methods_do_not_import_torch_or_dask():
    loaded = modules_after("import numpy as np, stackmff, stackmff.batch\n"
                           "stackmff.fuse_stack(np.random.rand(2, 32, 32).astype('f4'), "
                           "'pyramid')")
    assert not {"torch", "dask", "distributed", "napari", "zarr"} & loaded
    assert not any(m.startswith(INFERENCE_ONLY) for m in loaded)


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
    assert not {"torch", "scipy", "pywt", "dask"} & {m.split(".")[0] for m in loaded}


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
