import resource

import pytest
import torch

from stackmff.fusion.allocator import _glibc, reusing_freed_memory


def page_faults_of_a_fresh_tensor(megabytes: int = 64) -> int:
    """Minor page faults of filling a large tensor right after an equal one was freed."""
    first = torch.ones(megabytes << 18)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = torch.ones(megabytes << 18)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del second
    return faults


@pytest.mark.skipif(_glibc() is None, reason="glibc only")
def test_freed_memory_is_reused_inside_and_returned_after():
    assert page_faults_of_a_fresh_tensor() > 4000  # 64 MB in 4 kB pages: fresh pages each time
    with reusing_freed_memory():
        page_faults_of_a_fresh_tensor()  # the heap grows once
        assert page_faults_of_a_fresh_tensor() < 1000
        with reusing_freed_memory():  # nested: still on
            assert page_faults_of_a_fresh_tensor() < 1000
        assert page_faults_of_a_fresh_tensor() < 1000
    assert page_faults_of_a_fresh_tensor() > 4000  # defaults back
