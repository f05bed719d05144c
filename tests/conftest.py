import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

_cache = tempfile.mkdtemp(prefix="stackmff-test-cache-")


def pytest_configure(config):
    """Kernels built by the tests go to a cache of their own, not the user's."""
    os.environ["XDG_CACHE_HOME"] = _cache


def pytest_unconfigure(config):
    shutil.rmtree(_cache, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_config():
    """See :func:`stackmff.testing.tiny_model_config`."""
    from stackmff.testing import tiny_model_config

    return tiny_model_config()


@pytest.fixture
def checkpoint(tiny_config, tmp_path):
    """The tiny network with fixed random weights, saved as a checkpoint file."""
    import torch

    from stackmff.model import StackMFFV3
    from stackmff.weights.checkpoint import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, StackMFFV3(tiny_config), meta={"note": "random weights for tests"})
    return path


@pytest.fixture
def script_main():
    """``main`` of a script in scripts/, by its file name (scripts are not a package)."""
    import importlib.util

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "scripts" / name
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main

    return load
