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
    """See :func:`synthetic.tiny_model_config`."""
    from synthetic import tiny_model_config

    return tiny_model_config()
