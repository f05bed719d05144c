"""The napari plugin (npe2; manifest ``napari.yaml``): a reader for focus stacks, the "Fuse
focus stack" widget with retouching on a Labels layer, and the example stack as sample data.

Nothing here is imported by ``import stackmff``, and napari itself is only imported by the
widget: install it with ``pip install "stackmff[napari]"``.
"""
