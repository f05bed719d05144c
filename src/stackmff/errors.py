"""The one exception type that means "the user's input is wrong".

The CLI turns it into a one-line message and a non-zero exit; library users can catch it
as a ``ValueError``.
"""


class StackError(ValueError):
    """Bad input: no images, one image, unreadable files, mismatched sizes, unsafe output."""
