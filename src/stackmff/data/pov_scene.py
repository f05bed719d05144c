"""Random scenes for the ray-traced renderer, written as POV-Ray scene files.

A scene is drawn from a seed: a far photo-textured wall, then objects of several families at
random depths in front of it. The families are the structures a layer-compositing renderer
gets wrong: photo cards and a tilted floor (occlusion edges, slanted surfaces), wires and
cables, window blinds, twigs, text (thin structures in front of far backgrounds) and glossy
spheres (specular highlights). Two families, ``fence`` and ``leaves``, are drawn only for the
validation split, so a trained model is judged on structures it never saw.

The same scene is written for two passes: ``beauty`` (lit, textured, as a camera sees it) and
``depth`` (every surface emits its distance along the camera axis, unlit), so each pixel's
label comes from the geometry itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

TRAIN_FAMILIES = ("cards", "floor", "wires", "blinds", "twigs", "text", "gloss")
VALIDATION_FAMILIES = ("fence", "leaves")
FONTS = ("timrom.ttf", "cyrvetic.ttf")
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZabdefghkmnpqrstuvwxyz0123456789"


@dataclass(frozen=True)
class Solid:
    """One object: its shape, its beauty texture, and where it stands. The texture is
    attached before the placement (it moves with the object); the depth texture after it
    (it stays in camera coordinates)."""

    shape: str
    texture: str
    placement: str = ""


@dataclass
class PovScene:
    """A scene and its camera: ``near`` and ``far`` bound the focus range along the camera
    axis (the wall stands at ``far``); ``textures`` are the photo crops the scene file names
    (file name -> float RGB image), written beside it before rendering."""

    width: int
    height: int
    fov: float
    near: float
    far: float
    families: list[str]
    solids: list[Solid]
    lights: list[tuple[tuple[float, float, float], float]]
    textures: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def depth_scale(self) -> float:
        """The distance that the depth pass writes as full white."""
        return self.far * 1.05

    def pixel_size(self, z: float) -> float:
        """Scene units per pixel at distance ``z``."""
        return 2 * z * math.tan(math.radians(self.fov) / 2) / self.width

    def sdl(self, depth_pass: bool, focus: float | None = None, aperture: float = 0.0,
            samples: tuple[int, int] = (16, 128)) -> str:
        """The scene file: the beauty pass through a pinhole (``focus`` None) or focused at
        distance ``focus`` through an aperture of diameter ``aperture``; or the depth pass."""
        lens = ""
        if focus is not None and aperture > 0:
            lens = (f" aperture {aperture:.6f} blur_samples {samples[0]}, {samples[1]}"
                    f" confidence 0.95 variance 1/10000 focal_point <0, 0, {focus:.6f}>")
        lines = ["#version 3.7;",
                 "global_settings { assumed_gamma 1.0 max_trace_level 6 }",
                 f"camera {{ perspective location <0, 0, 0> direction <0, 0, 1> "
                 f"right x * {self.width / self.height:.6f} up y angle {self.fov:.4f}{lens} }}",
                 "background { rgb 0 }"]
        if depth_pass:
            depth = (f"texture {{ pigment {{ function {{ z / {self.depth_scale:.6f} }} "
                     "color_map { [0 rgb 0] [1 rgb 1] } } finish { ambient 0 emission 1 "
                     "diffuse 0 specular 0 reflection 0 } }")
            lines += [f"object {{ {s.shape} {s.placement} {depth} }}" for s in self.solids]
        else:
            lines += [f"light_source {{ <{p[0]:.4f}, {p[1]:.4f}, {p[2]:.4f}> color rgb "
                      f"{power:.4f} }}" for p, power in self.lights]
            lines += [f"object {{ {s.shape} {s.texture} {s.placement} }}" for s in self.solids]
        return "\n".join(lines) + "\n"


def draw_scene(rng: np.random.Generator, width: int, height: int, photos: list[np.ndarray],
               validation: bool = False) -> PovScene:
    """One random scene. ``photos`` are float RGB images to crop textures from; the
    validation split always holds one of its own families."""
    near = float(rng.uniform(1.0, 2.5))
    far = float(rng.uniform(6.0, 30.0))
    scene = PovScene(width, height, float(rng.uniform(28, 50)), near, far, [], [], [])
    builder = _Builder(scene, rng, photos)
    builder.wall()
    pool = list(TRAIN_FAMILIES) + (list(VALIDATION_FAMILIES) if validation else [])
    count = int(rng.integers(3, 6))
    families = list(rng.choice(pool, size=count, replace=False))
    if validation and not set(families) & set(VALIDATION_FAMILIES):
        families[0] = str(rng.choice(VALIDATION_FAMILIES))
    for family in families:
        getattr(builder, family)()
    scene.families = [str(f) for f in families]
    for _ in range(int(rng.integers(1, 4))):
        position = (float(rng.uniform(-8, 8)), float(rng.uniform(0, 10)),
                    float(rng.uniform(-6, 2)))
        scene.lights.append((position, float(rng.uniform(0.5, 1.0))))
    return scene


class _Builder:
    """Adds the objects of each family to a scene."""

    def __init__(self, scene: PovScene, rng: np.random.Generator, photos: list[np.ndarray]):
        self.scene, self.rng, self.photos = scene, rng, photos

    # --- where things go -------------------------------------------------------------
    def depth(self, nearest: float | None = None) -> float:
        """A distance drawn uniformly in inverse depth between the near end and the wall."""
        near = self.scene.near if nearest is None else nearest
        inverse = self.rng.uniform(1 / (self.scene.far * 0.97), 1 / near)
        return float(1 / inverse)

    def half_view(self, z: float) -> tuple[float, float]:
        """Half the visible width and height at distance ``z``."""
        half_width = z * math.tan(math.radians(self.scene.fov) / 2)
        return half_width, half_width * self.scene.height / self.scene.width

    def point(self, z: float, margin: float = 1.0) -> tuple[float, float]:
        hw, hh = self.half_view(z)
        return (float(self.rng.uniform(-hw, hw) * margin), float(self.rng.uniform(-hh, hh) * margin))

    def add(self, shape: str, texture: str, placement: str = "") -> None:
        self.scene.solids.append(Solid(shape, texture, placement))

    # --- textures --------------------------------------------------------------------
    def photo_texture(self, size: tuple[float, float], pixels: int = 256,
                      mapping: str = "translate <-0.5, -0.5, 0>") -> str:
        """A crop of a random photo, mapped onto a size[0] x size[1] rectangle centred at
        the origin in the xy plane (or placed by ``mapping`` before the scaling)."""
        photo = self.photos[int(self.rng.integers(len(self.photos)))]
        h, w = photo.shape[:2]
        side = int(min(h, w, max(48, pixels * self.rng.uniform(0.6, 1.4))))
        y, x = int(self.rng.integers(0, h - side + 1)), int(self.rng.integers(0, w - side + 1))
        name = f"tex{len(self.scene.textures):02d}.png"
        self.scene.textures[name] = photo[y:y + side, x:x + side]
        return (f"texture {{ pigment {{ image_map {{ png \"{name}\" interpolate 2 }} "
                f"{mapping} scale <{size[0]:.5f}, {size[1]:.5f}, {size[1]:.5f}> }} "
                f"finish {{ {self.matte()} }} }}")

    def matte(self) -> str:
        return f"ambient 0.12 diffuse {self.rng.uniform(0.6, 0.9):.3f}"

    def colour(self) -> str:
        r, g, b = self.rng.uniform(0.05, 0.95, 3)
        return f"rgb <{r:.3f}, {g:.3f}, {b:.3f}>"

    def plain_texture(self, glossy: bool | None = None) -> str:
        """A solid or procedural colour, matte or glossy."""
        glossy = bool(self.rng.random() < 0.3) if glossy is None else glossy
        pattern = str(self.rng.choice(["solid", "granite", "bozo", "wood", "marble"]))
        if pattern == "solid":
            pigment = f"pigment {{ {self.colour()} }}"
        else:
            pigment = (f"pigment {{ {pattern} color_map {{ [0 {self.colour()}] "
                       f"[1 {self.colour()}] }} scale {self.rng.uniform(0.01, 0.2):.4f} }}")
        finish = self.matte()
        if glossy:
            finish += (f" specular {self.rng.uniform(0.5, 1.0):.3f} roughness "
                       f"{self.rng.uniform(0.001, 0.02):.4f} reflection "
                       f"{self.rng.uniform(0.0, 0.25):.3f}")
        return f"texture {{ {pigment} finish {{ {finish} }} }}"

    def rotation(self, spread: float) -> str:
        ax, ay, az = self.rng.normal(0, spread, 3)
        return f"rotate <{ax:.3f}, {ay:.3f}, {az:.3f}>"

    # --- the families ----------------------------------------------------------------
    def wall(self) -> None:
        """The far photo wall: it fills the frame at the far end of the focus range."""
        z = self.scene.far
        hw, hh = self.half_view(z)
        size = (2.4 * hw, 2.4 * hh)
        self.add("box { <-0.5, -0.5, 0>, <0.5, 0.5, 0.01> }",
                 self.photo_texture((1, 1), pixels=512),
                 f"scale <{size[0]:.4f}, {size[1]:.4f}, 1> translate <0, 0, {z:.4f}>")

    def cards(self) -> None:
        """Photo cards, some tilted in depth."""
        for _ in range(int(self.rng.integers(2, 7))):
            z = self.depth()
            hw, _ = self.half_view(z)
            w = float(hw * self.rng.uniform(0.3, 1.0))
            h = float(w * self.rng.uniform(0.5, 1.5))
            x, y = self.point(z)
            self.add("box { <-0.5, -0.5, 0>, <0.5, 0.5, 0.02> }",
                     self.photo_texture((1, 1)),
                     f"scale <{w:.4f}, {h:.4f}, {w * 0.02:.4f}> {self.rotation(20)} "
                     f"translate <{x:.4f}, {y:.4f}, {z:.4f}>")

    def floor(self) -> None:
        """A photo-textured ground plane receding from near to far: continuous depth."""
        near, far = self.scene.near, self.scene.far
        _, hh = self.half_view(near)
        y0 = -hh * float(self.rng.uniform(0.3, 1.0))
        _, far_hh = self.half_view(far)
        y1 = -far_hh * float(self.rng.uniform(-0.2, 0.6))
        length = far - near
        angle = math.degrees(math.atan2(y1 - y0, length))
        width = 2.4 * self.half_view(far)[0]
        tile = float(self.rng.uniform(0.5, 3.0))
        self.add("box { <-0.5, -0.01, 0>, <0.5, 0, 1> }",
                 self.photo_texture((tile / width, tile / length), mapping="rotate x * 90"),
                 f"scale <{width:.4f}, 1, {length * 1.02 / math.cos(math.radians(angle)):.4f}> "
                 f"rotate x * {-angle:.4f} translate <0, {y0:.4f}, {near:.4f}>")

    def wires(self) -> None:
        """Cables and wires: sagging splines one to four pixels thick across the frame."""
        for _ in range(int(self.rng.integers(1, 7))):
            z = self.depth()
            hw, hh = self.half_view(z)
            radius = self.scene.pixel_size(z) * float(self.rng.uniform(0.5, 2.5))
            angle = float(self.rng.uniform(0, 180))
            y = float(self.rng.uniform(-hh, hh))
            sag = float(self.rng.uniform(-0.3, 0.3) * hh)
            dz = float(self.rng.uniform(-0.2, 0.2) * z)
            points = [(-1.6 * hw, y, z - dz), (-0.5 * hw, y + sag, z), (0.5 * hw, y + sag, z),
                      (1.6 * hw, y, z + dz)]
            knots = ", ".join(f"<{p[0]:.4f}, {p[1]:.4f}, {p[2]:.4f}>, {radius:.5f}"
                              for p in [points[0], *points, points[-1]])
            self.add(f"sphere_sweep {{ cubic_spline 6, {knots} }}", self.plain_texture(),
                     f"translate <0, 0, {-z:.4f}> rotate z * {angle:.2f} "
                     f"translate <0, 0, {z:.4f}>")

    def blinds(self) -> None:
        """Window blinds: parallel slats with gaps, the far scene seen between them."""
        z = self.depth()
        hw, hh = self.half_view(z)
        pitch = self.scene.pixel_size(z) * float(self.rng.uniform(5, 16))
        slat = pitch * float(self.rng.uniform(0.3, 0.7))
        count = int(2 * hh / pitch) + 2
        extent = float(self.rng.uniform(0.4, 1.0))
        texture = self.plain_texture()
        for i in range(count):
            y = -hh + i * pitch
            self.add(f"box {{ <{-hw * 1.2 * extent:.4f}, 0, 0>, <{hw * 1.2:.4f}, "
                     f"{slat:.5f}, {slat * 0.1:.5f}> }}", texture,
                     f"rotate x * {self.rng.uniform(-40, 40):.2f} "
                     f"translate <0, {y:.4f}, {z:.4f}>")

    def twigs(self) -> None:
        """Branching twigs: cones that fork and thin out, some reaching toward the camera."""
        for _ in range(int(self.rng.integers(1, 3))):
            z = self.depth()
            hw, hh = self.half_view(z)
            start = np.array([self.rng.uniform(-hw, hw), -hh * 1.1, z])
            direction = np.array([self.rng.normal(0, 0.3), 1.0, self.rng.normal(0, 0.2)])
            texture = self.plain_texture(glossy=False)
            self._branch(start, direction, hh * float(self.rng.uniform(0.5, 1.0)),
                         self.scene.pixel_size(z) * float(self.rng.uniform(1.5, 4)), 4, texture)

    def _branch(self, start, direction, length, radius, depth, texture) -> None:
        direction = direction / np.linalg.norm(direction)
        end = start + direction * length
        end[2] = max(end[2], self.scene.near * 1.05)
        end_radius = radius * 0.6
        self.add(f"cone {{ <{start[0]:.4f}, {start[1]:.4f}, {start[2]:.4f}>, {radius:.5f}, "
                 f"<{end[0]:.4f}, {end[1]:.4f}, {end[2]:.4f}>, {end_radius:.5f} }}", texture)
        if depth == 0:
            return
        for _ in range(2):
            turn = self.rng.normal(0, 0.6, 3) * np.array([1, 0.5, 0.4])
            self._branch(end, direction + turn, length * float(self.rng.uniform(0.5, 0.75)),
                         end_radius, depth - 1, texture)

    def text(self) -> None:
        """Lines of text: thin strokes and sharp corners, on nothing or on a card."""
        for _ in range(int(self.rng.integers(1, 4))):
            z = self.depth()
            hw, _ = self.half_view(z)
            size = self.scene.pixel_size(z) * float(self.rng.uniform(8, 28))
            word = "".join(self.rng.choice(list(LETTERS), size=int(self.rng.integers(3, 10))))
            x, y = self.point(z, 0.9)
            font = FONTS[int(self.rng.integers(len(FONTS)))]
            self.add(f"text {{ ttf \"{font}\" \"{word}\" 0.15, 0 }}",
                     self.plain_texture(),
                     f"scale {size:.5f} {self.rotation(8)} translate <{x - hw * 0.3:.4f}, "
                     f"{y:.4f}, {z:.4f}>")

    def gloss(self) -> None:
        """Glossy spheres: specular highlights, small bright spots that blur into discs."""
        for _ in range(int(self.rng.integers(1, 6))):
            z = self.depth()
            hw, _ = self.half_view(z)
            radius = float(hw * self.rng.uniform(0.03, 0.25))
            x, y = self.point(z)
            texture = (self.plain_texture(glossy=True) if self.rng.random() < 0.6 else
                       self.photo_texture((2 * radius, 2 * radius)).replace(
                           "finish { ", "finish { specular 0.8 roughness 0.005 ", 1))
            self.add(f"sphere {{ <0, 0, 0>, {radius:.5f} }}", texture,
                     f"translate <{x:.4f}, {y:.4f}, {z + radius:.4f}>")

    def fence(self) -> None:
        """A wire fence: a grid of thin bars in one plane (validation only)."""
        z = self.depth()
        hw, hh = self.half_view(z)
        radius = self.scene.pixel_size(z) * float(self.rng.uniform(0.6, 1.8))
        pitch = self.scene.pixel_size(z) * float(self.rng.uniform(8, 24))
        texture = self.plain_texture()
        bars = []
        for i in range(int(2.4 * hw / pitch) + 1):
            x = -1.2 * hw + i * pitch
            bars.append(f"cylinder {{ <{x:.4f}, {-1.2 * hh:.4f}, 0>, <{x:.4f}, "
                        f"{1.2 * hh:.4f}, 0>, {radius:.5f} }}")
        for i in range(int(2.4 * hh / pitch) + 1):
            y = -1.2 * hh + i * pitch
            bars.append(f"cylinder {{ <{-1.2 * hw:.4f}, {y:.4f}, 0>, <{1.2 * hw:.4f}, "
                        f"{y:.4f}, 0>, {radius:.5f} }}")
        self.add("union { " + " ".join(bars) + " }", texture,
                 f"rotate z * {self.rng.uniform(0, 90):.2f} rotate y * "
                 f"{self.rng.uniform(-35, 35):.2f} translate <0, 0, {z:.4f}>")

    def leaves(self) -> None:
        """Clusters of leaves: flattened ellipsoids at many depths (validation only)."""
        for _ in range(int(self.rng.integers(1, 4))):
            z = self.depth(nearest=self.scene.near * 1.2)
            hw, _ = self.half_view(z)
            cx, cy = self.point(z)
            for _ in range(int(self.rng.integers(4, 12))):
                size = float(hw * self.rng.uniform(0.04, 0.15))
                dx, dy, dz = self.rng.normal(0, 1, 3) * np.array([hw * 0.2, hw * 0.2, z * 0.08])
                green = (f"rgb <{self.rng.uniform(0.05, 0.4):.3f}, "
                         f"{self.rng.uniform(0.3, 0.8):.3f}, {self.rng.uniform(0.0, 0.3):.3f}>")
                texture = (f"texture {{ pigment {{ granite color_map {{ [0 {green}] "
                           f"[1 {green} * 0.6] }} scale {size * 0.3:.5f} }} "
                           f"finish {{ {self.matte()} specular 0.3 roughness 0.02 }} }}")
                self.add("sphere { <0, 0, 0>, 1 }", texture,
                         f"scale <{size:.5f}, {size * 0.5:.5f}, {size * 0.08:.5f}> "
                         f"{self.rotation(40)} translate <{cx + dx:.4f}, {cy + dy:.4f}, "
                         f"{max(z + dz, self.scene.near * 1.05):.4f}>")
