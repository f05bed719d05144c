"""CPU and GPU speed machinery for the network: threads, the allocator, BatchNorm folding and
memory layout, and the compiled attention kernel. None of it changes what the network computes.
"""
