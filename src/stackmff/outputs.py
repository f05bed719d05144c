"""The one output plan: the name of every product a fusion writes, the checks on them that run
before any pixel is read, and their encoding. Every front end (``fuse``, ``batch``,
``regather``, napari) asks it; no other module spells a product's suffix.

The products: the fused image, the focus-map picture (colour, with a bar) and the raw layer
indices beside it, the confidence, (microscopy) the height map in µm, and the surface as a
mesh (:mod:`stackmff.surface`; an OBJ with its material library and texture beside it). A
source with several stacks (scenes x time points) writes its maps as TIFFs with one page per
stack. A photograph's fused image also carries its layers' ICC profile and one layer's
metadata (:class:`Photo`).
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io.atomic import FolderWriter
from stackmff.io.focusmap import confidence_picture, focus_map_picture
from stackmff.io.image import SOFTWARE, encode_image, is_own_output
from stackmff.io.mesh import check_mesh_suffix, require_trimesh
from stackmff.io.metadata import FusionRecord, embed
from stackmff.io.paths import TIFF_SUFFIXES, WRITABLE_SUFFIXES, check_output_paths
from stackmff.microscopy.axes import Metadata, check_heights, heights
from stackmff.microscopy.source import is_zarr
from stackmff.surface import (
    DEFAULT_FACES,
    SurfaceScale,
    make_surface,
    parse_length,
    texture_picture,
)

FOCUS_MAP, INDICES, CONFIDENCE, HEIGHT_MAP = "_focus_map", "_indices", "_confidence", "_height_map"
TEXTURE = "_texture"  # an OBJ mesh's texture, beside it
# the names of the maps, recognised among the inputs (an earlier run's products)
PRODUCT_NAMES = (FOCUS_MAP, INDICES, CONFIDENCE, HEIGHT_MAP, TEXTURE)
# the suffixes of a fused microscopy image (TCYX with its metadata)
OME_TIFF, OME_ZARR = ".ome.tif", ".ome.zarr"
# the pixel types OME-XML names (float16 is written as float32)
OME_TIFF_TYPES = ("int8", "int16", "int32", "uint8", "uint16", "uint32", "float32", "float64")


def is_tiff(path: Path) -> bool:
    return path.suffix.lower() in TIFF_SUFFIXES


def is_zarr_output(path: Path) -> bool:
    """An OME-Zarr output is a folder named ``.zarr``."""
    return path.name.lower().endswith(".zarr")


def indices_path(focus_map: str | Path) -> Path:
    """Where the raw 0-based layer indices go beside a focus-map picture: ``<stem>_indices``
    as a TIFF beside a TIFF picture (one page per stack, like the picture), else a 16-bit PNG
    (never a lossy or 8-bit file)."""
    path = Path(focus_map)
    return path.with_name(f"{path.stem}{INDICES}{'.tif' if is_tiff(path) else '.png'}")


def mesh_companions(mesh: Path) -> tuple[Path, Path] | None:
    """What an OBJ mesh needs beside it: ``<stem>.mtl`` and ``<stem>_texture.png``; ``None``
    for the formats that are one file."""
    if mesh.suffix.lower() != ".obj":
        return None
    return mesh.with_suffix(".mtl"), mesh.with_name(f"{mesh.stem}{TEXTURE}.png")


@dataclass(frozen=True)
class MeshOptions:
    """How the surface becomes a mesh.

    Attributes:
        faces: the most triangles (``--mesh-faces``).
        z_step: the distance between layers in µm (``--z-step``: a photo stack's rail
            step); for a microscopy file it replaces the file's Z step.
        pixel_size: the size of a pixel in µm (``--pixel-size``); for a microscopy file it
            replaces the file's pixel size.
    """

    faces: int = DEFAULT_FACES
    z_step: float | None = None
    pixel_size: float | None = None

    @classmethod
    def of(cls, faces: int | None = None, z_step: str | float | None = None,
           pixel_size: str | float | None = None) -> MeshOptions:
        """The options from the command line's text (``0.05mm``) or numbers in µm.

        Raises:
            StackError: a length without a known unit, or not a positive number of faces.
        """
        faces = DEFAULT_FACES if faces is None else faces
        if isinstance(faces, bool) or not isinstance(faces, (int, np.integer)) or faces < 2:
            raise StackError(f"--mesh-faces must be a whole number of at least 2, got {faces!r}")
        return cls(int(faces), None if z_step is None else parse_length(z_step, "--z-step"),
                   None if pixel_size is None else parse_length(pixel_size, "--pixel-size"))

    @property
    def given(self) -> list[str]:
        """The options given, as the command line names them."""
        return [flag for flag, value in (("--mesh-faces", self.faces != DEFAULT_FACES),
                                         ("--z-step", self.z_step is not None),
                                         ("--pixel-size", self.pixel_size is not None))
                if value]


@dataclass(frozen=True)
class Target:
    """What the source will give, as far as the outputs care; known from headers alone.

    Attributes:
        microscopy: the fused image is TCYX in the source's dtype with its metadata.
        stacks: scenes x time points; maps of several stacks need one TIFF page each.
        scenes, channels, dtype: of a microscopy source (a plain image takes any).
        where: the input, for messages.
        inputs: files the outputs must not overwrite.
        metadata, layers: of a microscopy source: its heights, known before any pixel.
        linear: the fused image holds linear light (a RAW stack developed linear), which
            needs 16 bits.
    """

    microscopy: bool = False
    stacks: int = 1
    scenes: int = 1
    channels: int = 1
    dtype: np.dtype | None = None
    where: str = ""
    inputs: tuple[Path, ...] = ()
    metadata: Metadata | None = None
    layers: int = 0
    linear: bool = False


@dataclass(frozen=True)
class OutputPlan:
    """Where each product goes; ``None`` for what was not asked for."""

    image: Path
    focus_map: Path | None = None
    confidence: Path | None = None
    height_map: Path | None = None
    mesh: Path | None = None
    mesh_options: MeshOptions = MeshOptions()

    @classmethod
    def of(cls, image: str | Path, focus_map: str | Path | None = None,
           confidence: str | Path | None = None,
           height_map: str | Path | None = None, mesh: str | Path | None = None,
           mesh_options: MeshOptions = MeshOptions()) -> OutputPlan:
        def path(value):
            return None if value is None else Path(value)

        return cls(Path(image), path(focus_map), path(confidence), path(height_map),
                   path(mesh), mesh_options)

    @classmethod
    def named(cls, stem: Path, image_suffix: str, *, focus_map: bool = False,
              confidence: bool = False, height_map: bool = False,
              pictures: str = ".png", mesh: str | None = None,
              mesh_options: MeshOptions = MeshOptions()) -> OutputPlan:
        """Every product named after one stem: ``<stem><image_suffix>``,
        ``<stem>_focus_map<pictures>`` (and its ``_indices``), ``<stem>_confidence<pictures>``,
        ``<stem>_height_map.tif``, ``<stem><mesh>`` (a mesh suffix such as ``.glb``)."""

        def path(suffix: str) -> Path:
            return stem.with_name(stem.name + suffix)

        return cls(path(image_suffix), path(FOCUS_MAP + pictures) if focus_map else None,
                   path(CONFIDENCE + pictures) if confidence else None,
                   path(HEIGHT_MAP + ".tif") if height_map else None,
                   path(mesh) if mesh else None, mesh_options)

    @classmethod
    def beside(cls, image: Path, **products) -> OutputPlan:
        """The products named after an image's name without its format suffix (``.ome.tif``
        whole): ``photo.png`` -> ``photo_focus_map.png``, ... (see :meth:`named`)."""
        stem = image.with_name(image_stem(image.name))
        return dataclasses.replace(cls.named(stem, "", **products), image=image)

    @property
    def indices(self) -> Path | None:
        return None if self.focus_map is None else indices_path(self.focus_map)

    def paths(self) -> list[Path]:
        """Every file (or OME-Zarr folder) the plan writes, the fused image first."""
        companions = () if self.mesh is None else mesh_companions(self.mesh) or ()
        return [p for p in (self.image, self.focus_map, self.indices, self.confidence,
                            self.height_map, self.mesh, *companions) if p is not None]

    def check(self, target: Target, has_confidence: bool = True, method: str = "") -> None:
        """Everything about the outputs that is known before any pixel is read: file types,
        that the maps fit the number of stacks, that the heights fit float32, that the outputs
        differ from each other and from the inputs, and that the method makes the maps asked
        for.

        Raises:
            StackError: the first of these that fails; nothing was written.
        """
        self._check_image(target)
        for name, path in (("--focus-map", self.focus_map), ("--confidence", self.confidence)):
            if path is None:
                continue
            _check_writable(path)
            if target.stacks > 1 and not is_tiff(path):
                raise StackError(f"{name} {path}: {target.where} holds {target.stacks} stacks "
                                 "(scenes x time points); use a .tif, which gets one page per "
                                 "stack")
        if self.height_map is not None and not is_tiff(self.height_map):
            raise StackError(f"--height-map {self.height_map}: heights are float32, "
                             "write them to a .tif")
        if self.height_map is not None and target.metadata is not None:
            check_heights(target.metadata, target.layers, target.where)
        self._check_mesh(target)
        self.check_paths(target.inputs, target.microscopy)
        check_confidence(self.confidence is not None, has_confidence, method)

    def check_paths(self, inputs: Sequence[Path], microscopy: bool = False) -> None:
        """That the outputs differ from each other and from the inputs (under whatever names),
        and that an OME-Zarr output, a folder replaced whole, replaces nothing but a previous
        OME-Zarr image of ours that holds no input.

        Raises:
            StackError: the first of these that fails; nothing was written.
        """
        folders = {self.image} if microscopy and is_zarr_output(self.image) else set()
        check_output_paths(self.paths(), inputs, folders=folders)
        for folder in folders:
            _check_replaceable(folder)

    def _check_mesh(self, target: Target) -> None:
        """A mesh of a known type, of one stack, with trimesh installed; mesh options only
        with a mesh."""
        if self.mesh is None:
            given = self.mesh_options.given
            if given:
                raise StackError(f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'}"
                                 " to --mesh, which was not given")
            return
        check_mesh_suffix(self.mesh)
        if target.stacks > 1:
            raise StackError(f"--mesh {self.mesh}: {target.where} holds {target.stacks} stacks "
                             "(scenes x time points) and a mesh is one surface; fuse one scene "
                             "and time point into a file of its own")
        require_trimesh()

    def _check_image(self, target: Target) -> None:
        image = self.image
        if target.linear and image.suffix.lower() not in (".png", *TIFF_SUFFIXES):
            raise StackError(f"cannot write {image}: linear light needs 16 bits (.tif or "
                             ".png); 8 bits of it band in the shadows")
        if not target.microscopy:
            _check_writable(image)
        elif is_zarr_output(image):
            if target.scenes > 1:
                raise StackError(f"{target.where} holds {target.scenes} scenes: write them to "
                                 "an .ome.tif (one series per scene)")
        elif is_tiff(image):
            _check_ome_tiff_type(image, target)
        else:
            if image.suffix.lower() not in WRITABLE_SUFFIXES:
                raise StackError(f"cannot write {image}: use .ome.tif or .ome.zarr for a "
                                 "microscopy image")
            if target.stacks > 1 or target.channels > 1 or target.dtype not in (np.uint8,
                                                                                 np.uint16):
                raise StackError(f"cannot write {image}: {target.where} gives {target.stacks} "
                                 f"image(s) of {target.channels} {target.dtype} channel(s); use "
                                 ".ome.tif or .ome.zarr")

    def encode(self, products: Products) -> dict[Path, bytes | FolderWriter]:
        """The bytes (or the folder writer) of every product, by path.

        Raises:
            StackError: a map was asked for that the method did not make.
        """
        if self.focus_map is not None and products.focus_maps is None:
            raise StackError(f"method {products.method!r} produces no focus map")
        if self.confidence is not None and products.confidences is None:
            raise StackError(f"method {products.method!r} produces no confidence map")
        files = {self.image: _encode_fused(products, self.image)}
        if self.focus_map is not None:
            layers = products.layers
            files[self.focus_map] = _pages(lambda m: focus_map_picture(m, layers),
                                           products.focus_maps, self.focus_map)
            files[self.indices] = _pages(lambda m: m, products.focus_maps, self.indices)
        if self.confidence is not None:
            files[self.confidence] = _pages(confidence_picture, products.confidences,
                                            self.confidence)
        if self.height_map is not None:
            files[self.height_map] = _encode_heights(products)
        if self.mesh is not None:
            files.update(self._encode_mesh(products))
        return files

    def _encode_mesh(self, products: Products) -> dict[Path, bytes]:
        """The surface of the (one) stack, textured with its fused image, in µm where the
        metadata or the options say so (see :mod:`stackmff.surface`)."""
        from stackmff.io.mesh import MeshData, encode_mesh

        about, options = products.microscopy, self.mesh_options
        focus_map = products.focus_maps[0]
        surface = make_surface(
            focus_map, products.layers,
            depth=_first(products.depths),
            confidence=_first(products.surface_confidences or products.confidences),
            faces=options.faces)
        scale = surface_scale(about.metadata if about else None, options, about is None,
                              about.where if about else str(self.mesh))
        if about is None:
            picture = texture_picture(products.fused)
        else:
            channels = products.fused.shape[2]
            picture = texture_picture(products.fused[0, 0], about.metadata.colors(channels))
        data = MeshData(surface.vertices(scale), surface.faces, surface.uv(), picture,
                        surface.sample(picture), scale.description(products.layers))
        return encode_mesh(data, self.mesh, mesh_companions(self.mesh))


@dataclass(frozen=True)
class Microscopy:
    """What a microscopy image's outputs carry beside the pixels.

    Attributes:
        metadata: physical sizes, Z origin and channels (the fused image and the heights keep
            them).
        where: the input, for messages.
        version: the OME-Zarr version read, which an OME-Zarr output keeps.
        name: the input's file name, recorded in an OME-Zarr output.
    """

    metadata: Metadata
    where: str = ""
    version: str | None = None
    name: str = ""


@dataclass(frozen=True)
class Photo:
    """What a photograph's fused image carries beside its pixels.

    Attributes:
        icc: the ICC profile of its layers (or of the space a RAW stack was developed into).
        record: whose metadata it carries and how it was fused; ``None`` to carry none.
    """

    icc: bytes | None = None
    record: FusionRecord | None = None


@dataclass
class Products:
    """What one run made, stack by stack (in scene, time point order).

    Attributes:
        fused: a stack of images: ``(H, W[, 3])`` in the stack's bit depth; a microscopy
            image: ``(S, T, C, Y, X)`` in its dtype.
        focus_maps: ``(H, W)`` uint16 per stack, or ``None`` for a method without one.
        confidences: ``(H, W)`` float32 per stack, or ``None``.
        layers: the stacks' layer count (the focus-map picture's colour bar).
        method: the method's name, for messages.
        microscopy: set for a microscopy image: its fused image is TCYX with metadata.
        photo: set for a stack of photographs: the profile and metadata it carries.
        depths: ``(H, W)`` float32 sub-layer positions per stack (``FusionResult.depth``),
            or ``None``: what the mesh refines its heights with.
        surface_confidences: what the mesh weighs its heights by, where that is not
            ``confidences`` (a retouch: the edited pixels are sure).
    """

    fused: np.ndarray
    focus_maps: list[np.ndarray] | None
    confidences: list[np.ndarray] | None
    layers: int
    method: str = ""
    microscopy: Microscopy | None = None
    photo: Photo | None = None
    depths: list[np.ndarray | None] | None = None
    surface_confidences: list[np.ndarray] | None = None


def _first(values: list | None):
    return None if values is None else values[0]


def surface_scale(metadata: Metadata | None, options: MeshOptions, photos: bool,
                  where: str) -> SurfaceScale:
    """The lengths of a mesh: the options first, then a microscopy file's metadata; what
    stays unknown stays in pixels and layers, with a warning."""
    metadata = metadata or Metadata()
    z_step = options.z_step or metadata.size_z
    size_x = options.pixel_size or metadata.size_x
    size_y = options.pixel_size or metadata.size_y or size_x
    size_x = size_x or size_y
    if z_step is None:
        warnings.warn(f"{where}: the mesh's heights are layer indices, not lengths: give "
                      "--z-step (the distance between layers, e.g. 0.05mm)", stacklevel=3)
    elif size_x is None:
        warnings.warn(f"{where}: the mesh's x and y are pixels and its heights µm: give "
                      "--pixel-size (e.g. 5um) for a surface true to scale", stacklevel=3)
    origin = metadata.z_origin if options.z_step is None and metadata.size_z else 0.0
    return SurfaceScale(size_x, size_y, z_step, origin, towards_camera=photos)


def _encode_fused(products: Products, path: Path) -> bytes | FolderWriter:
    """An image in its own format; a microscopy image as OME-Zarr (one scene), OME-TIFF (one
    series per scene) or, for one 8- or 16-bit plane, a plain image."""
    about, fused = products.microscopy, products.fused
    if about is None:
        photo = products.photo or Photo()
        data = encode_image(fused, path, SOFTWARE, photo.icc)
        if photo.record is None:
            return data
        return embed(data, path, photo.record, (fused.shape[1], fused.shape[0]))
    if is_zarr(path):
        from stackmff.microscopy.ome_zarr import zarr_writer

        return zarr_writer(fused[0], about.metadata, about.version or "0.4", about.name)
    if is_tiff(path):
        from stackmff.microscopy.ome_tiff import encode_ome_tiff

        widened = fused.astype(np.float32) if fused.dtype == np.float16 else fused
        return encode_ome_tiff(list(widened), "TCYX", about.metadata)
    return encode_image(fused[0, 0, 0], path, SOFTWARE)


def _encode_heights(products: Products) -> bytes:
    """Heights in µm (plane index x Z step + Z origin), float32, one series per scene."""
    from stackmff.microscopy.ome_tiff import encode_ome_tiff

    about = products.microscopy
    maps = np.stack(products.focus_maps).reshape(products.fused.shape[:2]
                                                 + products.focus_maps[0].shape)
    values, _ = heights(maps, about.metadata, about.where)
    return encode_ome_tiff(list(values), "TYX", about.metadata)


def _check_ome_tiff_type(image: Path, target: Target) -> None:
    """Refuse, before any pixel is read, a pixel type that OME-XML cannot name (the writer
    would fail only after the fusing). float16 is not refused: it is written as float32,
    which holds every float16 value exactly."""
    dtype = np.dtype(target.dtype) if target.dtype is not None else None
    if dtype is not None and dtype != np.float16 and dtype.name not in OME_TIFF_TYPES:
        raise StackError(f"cannot write {image}: {target.where} holds {dtype} pixels, which "
                         f"OME-TIFF cannot hold (it takes {', '.join(OME_TIFF_TYPES)}); use "
                         ".ome.zarr, which keeps them")


def check_confidence(asked: bool, has_confidence: bool, method: str) -> None:
    """A confidence output needs a method that has one (the transform methods do not)."""
    if asked and not has_confidence:
        raise StackError(f"method {method!r} produces no confidence map")


def _check_replaceable(folder: Path) -> None:
    """A folder at an OME-Zarr output's path is replaced only when it is an image we wrote:
    anything else holds someone's files, which the user may delete themselves."""
    from stackmff.microscopy.ome_zarr import written_by_stackmff

    if folder.is_dir() and not written_by_stackmff(folder):
        raise StackError(f"refusing to replace {folder}: it is not an OME-Zarr image written by "
                         "stackmff (delete it yourself to reuse the name)")


def _check_writable(path: Path) -> None:
    if path.suffix.lower() not in WRITABLE_SUFFIXES:
        raise StackError(f"cannot write {path}: unsupported file type "
                         f"{path.suffix or '(none)'!r}; use one of "
                         f"{', '.join(sorted(WRITABLE_SUFFIXES))}")


def _pages(encode_page, maps: list[np.ndarray], path: Path) -> bytes:
    """One picture, or a TIFF with one page per stack."""
    if len(maps) == 1:
        return encode_image(encode_page(maps[0]), path, SOFTWARE)
    import tifffile

    buffer = io.BytesIO()
    images = np.stack([encode_page(m) for m in maps])
    tifffile.imwrite(buffer, images, photometric="rgb" if images.ndim == 4 else "minisblack",
                     compression="zlib")
    return buffer.getvalue()


def image_stem(name: str) -> str:
    """A file's name without its format suffix: ``plate.ome.tif`` -> ``plate``,
    ``photo.png`` -> ``photo``."""
    from stackmff.microscopy.source import stem

    found = stem(name)
    return found if found != name else Path(name).stem


def skip_own_outputs(paths: list[Path], named: list[Path]) -> list[Path]:
    """``paths`` without the products of an earlier run found among them (in a folder or a
    glob; a file in ``named`` is kept), with a warning naming them: a fused image written into
    the layers' folder would otherwise be fused as one more layer. Recognised by the marker
    the products carry (:data:`stackmff.io.image.SOFTWARE`) or by a product's name."""
    given = {Path(p).resolve() for p in named if Path(p).is_file()}
    own = [p for p in paths if p.resolve() not in given
           and (image_stem(p.name).endswith(PRODUCT_NAMES) or is_own_output(p))]
    if own:
        shown = ", ".join(p.name for p in own[:5]) + (" ..." if len(own) > 5 else "")
        warnings.warn(f"skipped {len(own)} file(s) that stackmff wrote (results of an earlier "
                      f"run, not layers): {shown}", stacklevel=2)
    return [p for p in paths if p not in own]
