"""Score every fusion method on the real stacks that have a ground truth.

Usage: .venv/bin/python benchmarks/reference_sets.py [--data ../shared/data]

Sets: lytro-refocus-epfl48 (9 slices vs the Lytro all-in-focus render) and
devernay-office-povray (near + far focus, at blur diameters 5 and 10, vs the exact
pinhole render). Metrics follow the protocol in stackmff.metrics (8-bit grey PSNR/SSIM,
scikit-image defaults, plus colour PSNR). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import stackmff
from stackmff.io import load_stack
from stackmff.metrics import score


def reference_sets(data: Path) -> dict[str, tuple[list[Path], Path]]:
    lytro = data / "lytro-refocus-epfl48"
    office = data / "devernay-office-povray" / "office_stereo1"
    return {
        "lytro-epfl48 (9 layers)": (sorted((lytro / "stack").glob("*.jpg")),
                                    lytro / "reference" / "afocus_lytro.png"),
        "devernay office, blur 5": ([office / "office_stereo1_near.png",
                                     office / "office_stereo1_far.png"],
                                    office / "office_stereo1_all.png"),
        "devernay office, blur 10": ([office / "office_stereo1_near2.png",
                                      office / "office_stereo1_far2.png"],
                                     office / "office_stereo1_all.png"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    print("| set | method | PSNR grey (dB) | SSIM grey | PSNR colour (dB) | time (s) |")
    print("|---|---|---:|---:|---:|---:|")
    for name, (inputs, reference_path) in reference_sets(args.data).items():
        stack = load_stack(inputs)
        reference = load_stack([reference_path, reference_path]).layers[0]
        rows = []
        for method in stackmff.list_methods():
            started = time.perf_counter()
            result = stackmff.fuse_stack(stack, method.name)
            elapsed = time.perf_counter() - started
            rows.append((method.name, score(result.fused, reference), elapsed))
        best_layer = max((score(layer, reference) for layer in stack.layers),
                         key=lambda s: s.psnr)
        rows.append(("(best single layer)", best_layer, float("nan")))
        for method_name, s, elapsed in rows:
            print(f"| {name} | {method_name} | {s.psnr:.2f} | {s.ssim:.4f} | "
                  f"{s.psnr_colour:.2f} | {elapsed:.2f} |")


if __name__ == "__main__":
    main()
