#!/usr/bin/env bash
# Install what the benchmarks compare against or read: enfuse (the peer), GNU time (peak
# memory of every method's process), opencv-doc (the Middlebury Aloe scene with its
# disparity). Debian/Ubuntu; needs root or sudo. Already installed packages are left alone.
set -euo pipefail
need=()
command -v enfuse >/dev/null || need+=(enfuse)
[ -x /usr/bin/time ] || need+=(time)
[ -f /usr/share/doc/opencv-doc/examples/data/aloeGT.png ] || need+=(opencv-doc)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
