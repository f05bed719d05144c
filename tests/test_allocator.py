import subprocess
import sys

import pytest

from stackmff.runtime.allocator import _glibc

PROGRAM = """
import resource, sys
import numpy as np, torch
from stackmff.runtime.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
from stackmff.fusion import StackFuser
from stackmff.model import StackMFFV3
torch.manual_seed(0)
fuser = StackFuser(StackMFFV3().eval(), tile=None, workers=1)
stack = np.random.default_rng(0).random((4, 512, 512), dtype=np.float32)
fuser.logits(stack)
fuser.logits(stack)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fuser.logits(stack)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults_of_a_third_pass(mode: str) -> int:
    """Minor page faults of the network's third pass over a 4 x 512 x 512 stack."""
    output = subprocess.run([sys.executable, "-c", PROGRAM, mode], check=True,
                            capture_output=True, text=True).stdout
    return int(output.split()[-1])


@pytest.mark.skipif(_glibc() is None, reason="glibc only")
def test_later_passes_reuse_the_memory_of_earlier_ones():
    default = page_faults_of_a_third_pass("default")  # fresh pages for large tensors
    assert default > 8_000  # (16k to 117k measured)
    assert page_faults_of_a_third_pass("keep") < default / 8  # (0 measured)
