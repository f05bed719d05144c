#!/usr/bin/env bash
# Install what the benchmarks compare against or read: enfuse (a peer), GNU time (peak
# memory of every method's process), opencv-doc (the Middlebury Aloe scene with its
# disparity), and the authors' openfocus (a peer) in a virtual environment of its own,
# .openfocus-venv in the repository root, where `stackmff bench` finds it (or set
# STACKMFF_OPENFOCUS to its program). openfocus is never a dependency of stackmff: its dtcwt
# dependency pins numpy below 2. Debian/Ubuntu; apt needs root or sudo. Already installed
# packages are left alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.openfocus-venv"
need=()
command -v enfuse >/dev/null || need+=(enfuse)
[ -x /usr/bin/time ] || need+=(time)
[ -f /usr/share/doc/opencv-doc/examples/data/aloeGT.png ] || need+=(opencv-doc)
python3 -c "import ensurepip" 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
if [ ! -x "$venv/bin/openfocus" ]; then
    python3 -m venv "$venv"
    # the pinned torch is the CPU build; an unpinned one would pull the CUDA libraries
    "$venv/bin/pip" install -q torch==2.13.0 openfocus
fi
