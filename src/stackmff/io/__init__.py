"""Stack input/output: loading stacks, writing images at full bit depth, focus-map pictures."""

from stackmff.io.atomic import write_files_atomically
from stackmff.io.image import read_pages, write_image
from stackmff.io.paths import expand_inputs, natural_key
from stackmff.io.stack import FusionWork, Stack, load_stack

__all__ = [
    "FusionWork",
    "Stack",
    "expand_inputs",
    "load_stack",
    "natural_key",
    "read_pages",
    "write_files_atomically",
    "write_image",
]
