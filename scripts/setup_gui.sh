#!/usr/bin/env bash
# Install what a headless napari viewer needs to run the plugin's tests: a virtual X server
# (xvfb-run), Mesa's software OpenGL (napari's canvas needs OpenGL; Qt's "offscreen" platform
# has none), and the X/xcb libraries Qt's xcb platform plugin links against. Debian/Ubuntu;
# needs root or sudo. Already installed packages are left alone.
set -euo pipefail
packages=(xvfb xauth libgl1-mesa-dri libegl1 libgl1 libxkbcommon-x11-0 libdbus-1-3 libfontconfig1
          libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
          libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-xfixes0 libxcb-cursor0)
need=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
        || need+=("$package")
done
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
