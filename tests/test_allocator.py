"""keep_freed_memory: later passes of the network reuse the memory of earlier ones.

Each process runs one thread on a small stack without the native kernel, so its sequence of
allocations is the same every run. The page-fault count still moves in steps of 128 pages
with where the heap lands (measured: 5088 to 5600 faults by default, 0 to 384 with the
setting); the one absolute bound between them is several of those steps from either side.
"""

import subprocess
import sys

import pytest

from stackmff.runtime.allocator import _glibc

PROGRAM = """
import resource, sys
import numpy as np, torch
torch.set_num_threads(1)
from stackmff.runtime.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
from stackmff.fusion import StackFuser
from stackmff.model import StackMFFV3
torch.manual_seed(0)
fuser = StackFuser(StackMFFV3().eval(), tile=None, workers=1, native=False)
stack = np.random.default_rng(0).random((2, 256, 256), dtype=np.float32)
fuser.logits(stack)
fuser.logits(stack)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fuser.logits(stack)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults_of_a_third_pass(mode: str) -> int:
    """Minor page faults of the network's third pass over a 2 x 256 x 256 stack."""
    output = subprocess.run([sys.executable, "-c", PROGRAM, mode], check=True,
                            capture_output=True, text=True).stdout
    return int(output.split()[-1])


@pytest.mark.skipif(_glibc() is None, reason="glibc only")
def test_later_passes_reuse_the_memory_of_earlier_ones():
    assert page_faults_of_a_third_pass("default") > 1_500  # fresh pages for large tensors
    assert page_faults_of_a_third_pass("keep") < 1_500
