#!/usr/bin/env bash
# Install the Debian photos that configs/default.toml trains on: opencv-doc (photos under
# /usr/share/doc/opencv-doc/examples/data) and lomiri-wallpapers-16.04 (/usr/share/backgrounds),
# and POV-Ray 3.7 for the ray-traced stacks (stackmff synth --renderer raytraced).
# Debian/Ubuntu; needs root or sudo. Already installed packages are left alone.
set -euo pipefail
need=()
[ -d /usr/share/doc/opencv-doc/examples/data ] || need+=(opencv-doc)
[ -f /usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg ] || need+=(lomiri-wallpapers-16.04)
command -v povray >/dev/null || need+=(povray)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
