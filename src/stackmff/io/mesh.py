"""Mesh files, written through trimesh (the ``stackmff[mesh]`` extra): glTF binary (``.glb``)
and OBJ (with its ``.mtl`` and texture) carry the fused image as a texture, PLY carries
vertex colours, STL the geometry alone. What the axes mean (units, Z step) goes into each
file: glTF ``extras``, a PLY comment, OBJ comments, STL's 80-byte header.

Only the bytes are made here; :mod:`stackmff.outputs` names the files and writes them with
the other products, all together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stackmff.errors import StackError

MESH_SUFFIXES = (".glb", ".obj", ".ply", ".stl")
TEXTURED = (".glb", ".obj")
INSTALL = 'pip install "stackmff[mesh]"'
WHITE = (255, 255, 255, 255)  # the texture's own colours, not darkened by the material's


def header_reads(path: Path) -> bool:
    """A cheap check that a mesh file (or an OBJ's material library) we wrote is whole: its
    format's start (glTF's magic and its stated length; PLY's header; STL's face count)."""
    suffix = path.suffix.lower()
    with path.open("rb") as handle:
        head = handle.read(84)
    size = path.stat().st_size
    if suffix == ".glb":
        return head[:4] == b"glTF" and int.from_bytes(head[8:12], "little") == size
    if suffix == ".ply":
        return head.startswith(b"ply\n")
    if suffix == ".stl":
        return len(head) == 84 and 84 + 50 * int.from_bytes(head[80:84], "little") == size
    return head.startswith(b"#") or head.startswith(b"newmtl")  # OBJ, MTL: our first line


def require_trimesh():
    """trimesh, or a one-line error saying how to install it.

    Raises:
        StackError: trimesh is not installed.
    """
    try:
        import trimesh
    except ImportError:
        raise StackError(f"writing a mesh needs trimesh: {INSTALL}") from None
    return trimesh


def check_mesh_suffix(path: Path) -> None:
    """Refuse, before any pixel is read, a mesh file type that is not written.

    Raises:
        StackError: the suffix is none of :data:`MESH_SUFFIXES`.
    """
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise StackError(f"--mesh {path}: unsupported mesh type {path.suffix or '(none)'!r}; "
                         f"use {', '.join(MESH_SUFFIXES)}")


@dataclass(frozen=True)
class MeshData:
    """What a mesh file holds.

    Attributes:
        vertices: ``(V, 3)`` float.
        faces: ``(F, 3)`` integer vertex indices.
        uv: ``(V, 2)`` texture coordinates, for the textured formats.
        texture: ``(H, W[, 3])`` uint8, the texture at full resolution.
        colours: ``(V[, 3])`` uint8 vertex colours, for PLY.
        about: JSON-able description of the axes (units, Z step).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    texture: np.ndarray
    colours: np.ndarray
    about: dict


def encode_mesh(data: MeshData, path: Path,
                companions: tuple[Path, Path] | None = None) -> dict[Path, bytes]:
    """The bytes of a mesh file (and, for OBJ, of its material library and texture, at the
    ``companions`` paths: a ``.mtl`` and a ``.png`` beside it, named by the output plan).

    Raises:
        StackError: trimesh is missing, or an unsupported suffix.
    """
    check_mesh_suffix(path)
    trimesh = require_trimesh()
    suffix = path.suffix.lower()
    mesh = trimesh.Trimesh(vertices=data.vertices, faces=data.faces, process=False,
                           validate=False)
    if suffix == ".obj" and (companions is None or companions[1].suffix.lower() != ".png"
                             or {c.parent for c in companions} != {path.parent}):
        raise StackError(f"an OBJ needs its .mtl and .png texture beside it, got {companions}")
    texture_name = companions[1].stem if suffix == ".obj" else "texture"
    if suffix in TEXTURED:
        from PIL import Image

        material = trimesh.visual.material.SimpleMaterial(
            image=Image.fromarray(data.texture), name=texture_name,
            ambient=WHITE, diffuse=WHITE, specular=(0, 0, 0, 255))
        mesh.visual = trimesh.visual.TextureVisuals(uv=data.uv, material=material)
    elif suffix == ".ply":
        colours = data.colours if data.colours.ndim == 2 else \
            np.repeat(data.colours[:, None], 3, axis=1)
        mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colours)
    text = json.dumps(data.about, ensure_ascii=True, separators=(", ", ": "))
    if suffix == ".glb":
        scene = trimesh.Scene(mesh)
        scene.metadata.update({"stackmff": data.about})
        return {path: trimesh.exchange.gltf.export_glb(scene)}
    if suffix == ".obj":
        return _obj_files(trimesh, mesh, path, companions, text)
    if suffix == ".ply":
        return {path: _with_ply_comment(trimesh.exchange.ply.export_ply(mesh), text)}
    stl = bytearray(trimesh.exchange.stl.export_stl(mesh))
    header = f"stackmff {json.dumps(data.about['units'])}".encode("ascii")[:80]
    stl[:80] = header.ljust(80, b" ")
    return {path: bytes(stl)}


def _obj_files(trimesh, mesh, path: Path, companions: tuple[Path, Path],
               text: str) -> dict[Path, bytes]:
    mtl, texture = companions
    obj, files = trimesh.exchange.obj.export_obj(mesh, include_normals=False,
                                                 return_texture=True, mtl_name=mtl.name,
                                                 header=f"stackmff surface {text}")
    written = {path: obj.encode("utf-8")}
    for name, content in files.items():
        written[path.with_name(name)] = content
    if set(written) != {path, mtl, texture}:  # the names that the output plan checked
        raise StackError(f"the OBJ writer named its files {sorted(map(str, written))}, "
                         f"not {path.name}, {mtl.name} and {texture.name}")
    return written


def _with_ply_comment(ply: bytes, text: str) -> bytes:
    """A ``comment`` line after the PLY header's ``format`` line."""
    start = ply.index(b"format")
    end = ply.index(b"\n", start) + 1
    return ply[:end] + f"comment stackmff {text}\n".encode("ascii") + ply[end:]
