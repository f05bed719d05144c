"""Worker functions for the batch tests; a module of its own so spawned workers import it."""

import os

from stackmff.batch.work import fuse_one


def die_on_first_try(task, outdir, options, attempt):
    """Kill the worker the first time it takes the stack named ``doomed``."""
    if task.name == "doomed" and attempt == 1:
        os._exit(9)
    return fuse_one(task, outdir, options, attempt)


def always_die(task, outdir, options, attempt):
    if task.name == "doomed":
        os._exit(9)
    return fuse_one(task, outdir, options, attempt)


def die_while_writing(task, outdir, options, attempt):
    """Kill the worker in the middle of writing its first stack's outputs, on the first try."""
    if attempt == 1:
        import stackmff.io.atomic as atomic

        atomic._fill = lambda fd, data: os._exit(9)
    return fuse_one(task, outdir, options, attempt)


def slow(task, outdir, options, attempt):
    """A quarter of a second per stack, so that a batch can be interrupted in the middle."""
    import time

    time.sleep(0.25)
    return fuse_one(task, outdir, options, attempt)
