"""keep_freed_memory: a large block, freed and allocated again, reuses its pages.

The network's intermediate tensors are blocks of tens of megabytes. By default glibc serves
each with fresh mmap pages (one page fault per 4 KiB touched); with the setting, a freed block
stays in the heap for the next one. Measured on one 64 MB buffer in a fresh process with
transparent huge pages off (they would fold 512 faults into one): 16385 faults by default, 0
with the setting, the same in every run. (Counting the network's own passes instead moved by
thousands of faults from run to run with where glibc's adaptive thresholds and the heap landed.)
"""

import subprocess
import sys

import pytest

from stackmff.runtime.allocator import _glibc

PROGRAM = """
import ctypes, resource
import numpy as np
from stackmff.runtime.allocator import keep_freed_memory

PR_SET_THP_DISABLE = 41
assert ctypes.CDLL(None).prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
SIZE = 64 << 20

def faults_of_a_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones(SIZE, np.uint8)   # malloc, then touch every page
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del block
    return faults

faults_of_a_block()
default = faults_of_a_block()
assert keep_freed_memory()
faults_of_a_block()
print(default, faults_of_a_block())
"""


@pytest.mark.skipif(_glibc() is None, reason="glibc only")
def test_a_freed_block_is_reused_instead_of_faulted_in_again():
    output = subprocess.run([sys.executable, "-c", PROGRAM], check=True, capture_output=True,
                            text=True).stdout
    default, kept = map(int, output.split())
    pages = (64 << 20) // 4096
    assert default >= pages      # fresh pages for every block
    assert kept < pages // 100   # the freed block's pages again
