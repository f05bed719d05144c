"""Write an aligned stack: layers under their own names and bit depth, plus transforms.json.
Camera files (RAW, HEIC), which cannot be written back as such, become 16-bit TIFFs with the
stack's ICC profile."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from stackmff.io import Stack, write_files_atomically
from stackmff.io.image import encode_image
from stackmff.io.paths import camera_kind, check_output_paths
from stackmff.registration.align import Alignment


def layer_names(stack: Stack) -> list[str]:
    """One file name per layer: the input's name, numbered when one file held several pages."""
    counts = Counter(stack.paths)
    seen: Counter = Counter()
    names = []
    for path in stack.paths:
        suffix = ".tif" if camera_kind(path) else path.suffix
        if counts[path] > 1:
            names.append(f"{path.stem}_{seen[path]:03d}{suffix}")
            seen[path] += 1
        else:
            names.append(f"{path.stem}{suffix}")
    return names


def write_aligned(stack: Stack, alignment: Alignment, outdir: str | Path, model: str,
                  reference: int) -> list[Path]:
    """Write the aligned layers and ``transforms.json`` into ``outdir``; refuses to replace
    an input file."""
    outdir = Path(outdir)
    names = layer_names(stack)
    targets = {index: outdir / names[index] for index in alignment.indices}
    check_output_paths([*targets.values(), outdir / "transforms.json"], stack.paths)
    files = {}
    for layer, index in zip(alignment.layers, alignment.indices):
        files[targets[index]] = encode_image(stack.to_output(layer), targets[index],
                                             icc=stack.icc)
    record = {
        "reference": reference,
        "model": model,
        "crop": dict(zip(("y0", "y1", "x0", "x1"), alignment.crop)),
        "convention": "each transform maps reference pixel coordinates (x, y, 1) to the "
                      "original layer's pixel coordinates",
        "layers": [
            {"input": str(stack.paths[k]), "output": names[k] if k in alignment.indices else None,
             "index": k, "score": round(alignment.scores[k], 4), "failed": k in alignment.failed,
             "transform": (alignment.transforms[alignment.indices.index(k)].round(6).tolist()
                           if k in alignment.indices else None)}
            for k in range(len(stack))
        ],
    }
    files[outdir / "transforms.json"] = json.dumps(record, indent=2).encode()
    write_files_atomically(files)
    return list(files)
