"""Which modules a command walks through: run ``stackmff`` in this process, trace every call
from one stackmff module into another, and print the path (each cross-module call the first
time it is made) with its count of hops and of climbs: calls from a package into one that
imports it (directly or through others), i.e. back up the layers.

Usage: .venv/bin/python benchmarks/call_path.py fuse examples/pcb -o /tmp/out.png -q

Shows whether a command walks one corridor (few hops, no climbs) or doubles back through the
layers. PYTHONPATH=OTHER/src measures another checkout the same way.
"""

from __future__ import annotations

import ast
import sys
import tempfile
from pathlib import Path


def package(module: str) -> str:
    """``stackmff.io.image`` -> ``io``; a top-level module is its own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def importers() -> dict[str, set[str]]:
    """For each package, the packages that import it, directly or through others (lazy
    imports in functions included), read from the source of the stackmff being run."""
    import stackmff

    root = Path(stackmff.__file__).parent
    imports: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            found = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and node.level == 0 else [])
            for other in found:
                if other.startswith("stackmff.") and package(other) != package(name):
                    imports.setdefault(package(other), set()).add(package(name))
    closed = {p: set(users) for p, users in imports.items()}
    changed = True
    while changed:
        changed = False
        for users in closed.values():
            more = set().union(*(closed.get(u, set()) for u in users)) - users
            if more:
                users |= more
                changed = True
    return closed


COMPREHENSIONS = ("<genexpr>", "<listcomp>", "<dictcomp>", "<setcomp>")


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
        if event != "call" or importing(frame) or frame.f_code.co_name in COMPREHENSIONS:
            return  # a generator handed to another module runs as the caller's code
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
    above = importers()
    climbs = 0
    for caller, callee in edges:
        # the callee's package imports the caller's: the call goes back up the layers
        climb = package(callee) in above.get(package(caller), set()) and \
            package(caller) != package(callee)
        climbs += climb
        print(f"{caller} -> {callee}{'   (climb)' if climb else ''}")
    modules = {m for edge in edges for m in edge}
    print(f"{len(edges)} hops through {len(modules)} modules, {climbs} climbs back up")


if __name__ == "__main__":
    main()
