"""Many stacks: find them, fuse each with a method loaded once per worker, on local worker
processes or a Dask cluster; resumable, with one report line per stack (``batch.jsonl``)."""

from stackmff.batch.runner import fuse_many, summary
from stackmff.batch.stacks import StackTask, find_stacks
from stackmff.batch.work import BatchResult

__all__ = ["BatchResult", "StackTask", "find_stacks", "fuse_many", "summary"]
