"""Which modules a command walks through: run ``stackmff`` in this process, trace every call
from one stackmff module into another, and print the path (each cross-module call the first
time it is made) with its count of hops and of climbs back to a module already left.

Usage: .venv/bin/python benchmarks/call_path.py fuse examples/pcb -o /tmp/out.png -q

Shows whether a command walks one corridor (few hops, no climbs) or doubles back through the
layers. PYTHONPATH=OTHER/src measures another checkout the same way.
"""

from __future__ import annotations

import sys
import tempfile


def trace(argv: list[str]) -> list[tuple[str, str]]:
    """The cross-module calls inside stackmff, in the order first made."""
    from stackmff.cli import main

    edges: dict[tuple[str, str], None] = {}

    def module_of(frame) -> str | None:
        name = frame.f_globals.get("__name__", "")
        return name if name.startswith("stackmff") else None

    def importing(frame) -> bool:
        """Whether a stackmff module's body is running: an import, no step of the command."""
        while frame is not None:
            if frame.f_code.co_name == "<module>" and module_of(frame):
                return True
            frame = frame.f_back
        return False

    def profile(frame, event, arg):
        if event != "call" or importing(frame):
            return
        callee = module_of(frame)
        caller_frame = frame.f_back
        while caller_frame is not None and module_of(caller_frame) is None:
            caller_frame = caller_frame.f_back  # through numpy, torch, the standard library
        caller = None if caller_frame is None else module_of(caller_frame)
        if callee and caller and callee != caller:
            edges.setdefault((caller, callee), None)

    sys.setprofile(profile)
    try:
        status = main(argv)
    finally:
        sys.setprofile(None)
    if status != 0:
        raise SystemExit(f"the command failed with status {status}")
    return list(edges)


def main() -> None:
    argv = sys.argv[1:] or ["fuse", "examples/pcb", "-q", "-o",
                            f"{tempfile.mkdtemp()}/fused.png"]
    edges = trace(argv)
    seen: list[str] = []
    climbs = 0
    for caller, callee in edges:
        if callee in seen and callee != seen[-1]:
            climbs += 1
        for module in (caller, callee):
            if module not in seen:
                seen.append(module)
        print(f"{caller} -> {callee}")
    print(f"{len(edges)} hops through {len(seen)} modules, {climbs} back to a module "
          "already left")


if __name__ == "__main__":
    main()
