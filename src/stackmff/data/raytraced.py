"""Focus stacks ray-traced by POV-Ray: depth of field through a real aperture.

POV-Ray renders each scene (stackmff.data.pov_scene) once through a pinhole (the all-in-focus
truth), once per focus plane with ``aperture`` and ``blur_samples`` (distributed ray tracing:
partial occlusion at depth edges, thin structures in front of far backgrounds and specular
highlights come out as a lens makes them, which layer compositing with a disc blur gets
wrong), and once as the depth pass. Focus planes are spaced evenly in inverse depth, layer 0
focused farthest, as the physical renderer orders them; a pixel's label is the plane nearest
its depth in inverse depth. The aperture is chosen per stack for a blur of 1.6 to 4 px in
diameter between neighbouring planes and at least 10 to 28 px across the range, as measured
on a card's edge: POV-Ray's focal blur is 0.40 of what thin-lens geometry gives its aperture
(benchmarks/raytraced_blur.py), so the geometric aperture is widened by that measured
factor. Stacks rendered before that correction (``RENDERER_VERSION`` 1) were blurred 0.35 to
0.55 of their targets.

Needs the ``povray`` program (Debian package ``povray``, version 3.7).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stackmff.data.physical import PhysicalOptions, degrade
from stackmff.data.pov_scene import PovScene, draw_scene

# blur targets, as measured on an edge (2-98% width of a bright card's edge, linear light)
STEP_BLUR = (1.6, 4.0)       # px, blur-circle diameter between neighbouring focus planes
MIN_MAX_BLUR = (10.0, 28.0)  # px, the farthest plane's blur diameter at the near end, at least
CLEAN = PhysicalOptions(noise=0.0, jpeg=0.0)
# POV-Ray 3.7's focal blur as a share of the thin-lens diameter its aperture implies: edge
# widths 5, 9, 11, 12 and 17 px where geometry gives 14.3, 21.4, 28.5, 32.1 and 42.8
# (benchmarks/raytraced_blur.py before the correction)
POVRAY_BLUR = 0.40
# written into each stack's stack.json; a cache of another version is refused, not mixed
RENDERER_VERSION = 2


@dataclass
class RaytracedStack:
    """``layers`` (N, H, W, 3) and ``truth`` (H, W, 3) float32 in [0, 1], sRGB-encoded as a
    camera writes them; ``depth`` (H, W) float32 distance along the camera axis; ``label``
    (H, W) int64, the focus plane nearest each pixel's depth; ``focus`` (N,) the focus
    distances; ``aperture`` the lens diameter in scene units."""

    layers: np.ndarray
    truth: np.ndarray
    depth: np.ndarray
    label: np.ndarray
    focus: np.ndarray
    aperture: float
    families: list[str]


def povray_program() -> str:
    """The ``povray`` program, or a one-line reason why there is none."""
    program = shutil.which("povray")
    if program is None:
        raise RuntimeError("the ray-traced renderer needs POV-Ray 3.7: apt-get install povray "
                           "(scripts/setup_training.sh installs it)")
    return program


def focus_planes(near: float, far: float, n_layers: int) -> np.ndarray:
    """Focus distances evenly spaced in inverse depth, farthest first."""
    return 1.0 / np.linspace(1.0 / far, 1.0 / near, n_layers)


def label_from_depth(depth: np.ndarray, focus: np.ndarray) -> np.ndarray:
    """Per pixel, the focus plane nearest its depth in inverse depth (dioptres)."""
    inverse = 1.0 / np.maximum(depth, 1e-6)
    return np.argmin(np.abs(inverse[None] - 1.0 / focus[:, None, None]), axis=0).astype(np.int64)


def choose_aperture(scene: PovScene, n_layers: int, rng: np.random.Generator) -> float:
    """The lens diameter for this stack's blur: by thin-lens geometry a point at
    inverse-depth distance d from the focused plane blurs to ``K * d`` px with
    ``K = aperture * W / (2 tan(fov/2))``; POV-Ray's blur is ``POVRAY_BLUR`` of that."""
    span = 1.0 / scene.near - 1.0 / scene.far
    k = max(rng.uniform(*STEP_BLUR) * (n_layers - 1), rng.uniform(*MIN_MAX_BLUR)) / span
    return float(k * 2 * math.tan(math.radians(scene.fov) / 2) / scene.width / POVRAY_BLUR)


def render_raytraced(scene: PovScene, n_layers: int, rng: np.random.Generator,
                     options: PhysicalOptions = CLEAN,
                     samples: tuple[int, int] = (16, 128)) -> RaytracedStack:
    """Render ``scene`` as an ``n_layers`` stack with its truth, depth and label."""
    if n_layers < 2:
        raise ValueError(f"a stack needs at least 2 layers, got {n_layers}")
    program = povray_program()
    focus = focus_planes(scene.near, scene.far, n_layers)
    aperture = choose_aperture(scene, n_layers, rng)
    with tempfile.TemporaryDirectory(prefix="stackmff-pov-") as work:
        folder = Path(work)
        for name, image in scene.textures.items():
            rgb = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        truth = _render(program, folder, scene, scene.sdl(False), antialias=True)
        raw_depth = _render(program, folder, scene, scene.sdl(True), linear=True)
        layers = np.stack([_render(program, folder, scene,
                                   scene.sdl(False, float(f), aperture, samples))
                           for f in focus])
    depth = raw_depth[..., 0] * scene.depth_scale
    label = label_from_depth(depth, focus)
    layers = degrade(layers, rng, options)
    return RaytracedStack(layers, truth, depth.astype(np.float32), label, focus, aperture,
                          list(scene.families))


def _render(program: str, folder: Path, scene: PovScene, sdl: str, antialias: bool = False,
            linear: bool = False) -> np.ndarray:
    """One POV-Ray run in ``folder``: the image as float32 RGB in [0, 1]."""
    source, image = folder / "scene.pov", folder / "render.png"
    source.write_text(sdl)
    command = [program, "-D", "-V", "+FN16", f"+W{scene.width}", f"+H{scene.height}",
               f"+I{source.name}", f"+O{image.name}", "+L/usr/share/povray-3.7/include"]
    command += ["+A0.02", "+AM2", "+R3"] if antialias else ["-A"]
    if linear:
        command.append("File_Gamma=1.0")
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    pixels = cv2.imread(str(image), cv2.IMREAD_UNCHANGED) if image.is_file() else None
    if done.returncode != 0 or pixels is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"povray failed ({done.returncode}): {' | '.join(tail)}")
    image.unlink()
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB).astype(np.float32) / 65535.0


def draw_and_render(rng: np.random.Generator, size: tuple[int, int], n_layers: int,
                    photos: list[np.ndarray], validation: bool,
                    options: PhysicalOptions) -> RaytracedStack:
    """A random scene of ``size`` (height, width), rendered."""
    scene = draw_scene(rng, size[1], size[0], photos, validation)
    return render_raytraced(scene, n_layers, rng, options)
