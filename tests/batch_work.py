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
