"""Finding the fonts the synthetic letters are drawn with, and checking which letters each one has.

Fonts come from every place a fresh install may have them: matplotlib's bundled fonts, the system
font folders (what fontconfig knows, /usr/share/fonts, ~/.fonts), the Python font packages of the
`charrec[fonts]` extra (found through their entry points, `fonts_ttf` for the "Python Fonts"
packages and `fontpkg.family` for the fontpkg ones) and any `--fonts DIR` the user names.

A font is usable when it draws enough of A-Z and a-z. A letter counts as missing when its
rendering is blank or equals the font's .notdef "tofu" box (what the font draws for a code point
it surely lacks). Symbol and icon fonts that put other shapes at the letters' code points are
skipped by name. Faces of one family are grouped so that a family with 18 weights is not drawn 18
times as often as a family with one.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

import numpy as np
from PIL import Image, ImageFont

from charrec.data.builtin.font_cache import faces_of_files

FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
UPPERCASE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWERCASE = UPPERCASE.lower()
LETTERS = UPPERCASE + LOWERCASE
# A code point no text font maps (plane-16 private use): what a font draws for it is its tofu.
ABSENT_CODE_POINT = "\U0010fffd"
# Fonts whose letter code points hold symbols, or that draw one box for everything.
SKIPPED_NAME_PARTS = ("cmex", "cmsy", "stixsiz", "stixnonuni", "lastresort", "symbol", "dingbat",
                      "emoji", "awesome", "icon", "wingding", "webding", "braille", "ornament")
ENTRY_POINT_GROUPS = ("fonts_ttf", "fontpkg.family")
# Environment variable: os.pathsep-separated font folders to use *instead of* the discovered ones
# (for reproducible benchmarks, e.g. measuring what a fresh install has).
ONLY_DIRS_ENV = "CHARREC_FONT_DIRS"
MIN_UPPERCASE = 20  # a font that lacks more uppercase letters than this is not a text font
CHECK_SIZE = 24
GLYPH_PIXELS = 64  # font size glyphs are rasterised at for rendering
GLYPH_CACHE_SIZE = 20000
MAX_INSTANCES = 4  # named instances of a variable font kept: lightest to boldest, evenly


@dataclass(frozen=True)
class FontFace:
    """One usable face: file, index inside a .ttc, family name and the letters it draws."""

    path: str
    index: int
    family: str
    style: str
    letters: str
    instances: tuple[str, ...] = ()  # named instances of a variable font (weights, widths)

    @property
    def name(self) -> str:
        return f"{self.family} {self.style}".strip()


def default_font_dirs() -> list[Path]:
    """Folders searched on every machine: matplotlib's fonts and the usual system folders."""
    dirs: list[Path] = []
    matplotlib_spec = util.find_spec("matplotlib")
    if matplotlib_spec is not None and matplotlib_spec.submodule_search_locations:
        package_dir = Path(list(matplotlib_spec.submodule_search_locations)[0])
        dirs.append(package_dir / "mpl-data" / "fonts" / "ttf")
    dirs += [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"),
             Path.home() / ".fonts", Path.home() / ".local" / "share" / "fonts"]
    return dirs


def package_font_dirs() -> list[Path]:
    """Folders of installed Python font packages, found through their entry points."""
    dirs = []
    for group in ENTRY_POINT_GROUPS:
        for entry_point in metadata.entry_points(group=group):
            module_name = entry_point.value.split(":")[0].strip()
            try:
                spec = util.find_spec(module_name)
            except (ImportError, ValueError):
                continue
            if spec is not None and spec.submodule_search_locations:
                dirs += [Path(location) for location in spec.submodule_search_locations]
    return sorted(set(dirs))


def fontconfig_files() -> list[Path]:
    """Font files fontconfig knows (empty when `fc-list` is not installed)."""
    try:
        listing = subprocess.run(["fc-list", "--format", "%{file}\n"], capture_output=True,
                                 text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [Path(line) for line in listing.splitlines() if line.strip()]


def candidate_files(extra_dirs: Sequence[Path] = ()) -> list[Path]:
    """All font files in the searched places, symbol fonts left out, in a stable order."""
    only_dirs = os.environ.get(ONLY_DIRS_ENV, "").strip()
    if only_dirs:
        dirs = [Path(part) for part in only_dirs.split(os.pathsep) if part]
        files: list[Path] = []
    else:
        dirs = default_font_dirs() + package_font_dirs()
        files = fontconfig_files()
    dirs += [Path(extra) for extra in extra_dirs]
    for directory in dirs:
        if directory.is_dir():
            files += [path for path in directory.rglob("*")
                      if path.suffix.lower() in FONT_SUFFIXES and path.is_file()]
    kept = [path for path in set(files)
            if not any(part in path.name.lower().replace("-", "").replace("_", "")
                       for part in SKIPPED_NAME_PARTS)]
    return sorted(kept, key=lambda item: (item.name, str(item)))


def _render(font, text: str) -> bytes:
    """Bitmap of `text` as bytes (with its size), or b'' when nothing is drawn."""
    mask = font.getmask(text, mode="L")
    if mask.size[0] == 0 or mask.size[1] == 0 or mask.getbbox() is None:
        return b""
    return bytes(str(mask.size), "ascii") + bytes(mask)


def drawn_letters(font) -> str:
    """The letters of A-Z a-z that `font` really draws (not blank, not its tofu box)."""
    tofu = _render(font, ABSENT_CODE_POINT)
    renders = {letter: _render(font, letter) for letter in LETTERS}
    counts: dict[bytes, int] = {}
    for bitmap in renders.values():
        counts[bitmap] = counts.get(bitmap, 0) + 1
    # One bitmap shared by many letters is a fallback box, not a letter (small caps share 2).
    return "".join(letter for letter, bitmap in renders.items()
                   if bitmap and bitmap != tofu and counts[bitmap] <= 2)


def _faces_in(path: Path) -> list[FontFace]:
    faces = []
    for index in range(64 if path.suffix.lower() == ".ttc" else 1):
        try:
            font = ImageFont.truetype(str(path), CHECK_SIZE, index=index,
                                      layout_engine=ImageFont.Layout.BASIC)
        except OSError:
            break
        family, style = font.getname()
        try:
            names = [name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
                     for name in font.get_variation_names()]
            picks = sorted({round(step * (len(names) - 1) / max(MAX_INSTANCES - 1, 1))
                            for step in range(MAX_INSTANCES)}) if names else []
            instances = tuple(names[pick] for pick in picks)
        except (OSError, AttributeError):
            instances = ()  # not a variable font
        letters = drawn_letters(font)  # checked on the default instance
        if sum(letter in letters for letter in UPPERCASE) >= MIN_UPPERCASE:
            faces.append(FontFace(str(path), index, family or path.stem, style or "",
                                  letters, instances))
    return faces


def find_font_faces(extra_dirs: Sequence[Path] = ()) -> list[FontFace]:
    """Usable faces (glyph-checked), one per distinct family and style, in a stable order."""
    faces: dict[tuple[str, str], FontFace] = {}
    # an unreadable or broken font file is left out, like fontconfig does; the checks of
    # unchanged files come from the per-user cache (`charrec.data.builtin.font_cache`)
    for found in faces_of_files(candidate_files(extra_dirs), _faces_in, FontFace).values():
        for face in found:
            faces.setdefault((face.family.lower(), face.style.lower()), face)
    return sorted(faces.values(), key=lambda face: (face.family.lower(), face.style.lower(),
                                                     face.path))


# ------------------------------------------------ per process: loaded fonts and glyph bitmaps



_FACES: list[FontFace] = []
_FAMILIES: list[list[int]] = []
_FONTS: dict[tuple[int, str], ImageFont.FreeTypeFont] = {}
_GLYPHS: dict[tuple[int, str, str], tuple[np.ndarray, int]] = {}


def use_faces(faces: Sequence[FontFace]) -> None:
    """Remember the faces; fonts and glyph bitmaps are then loaded once per process, lazily."""
    global _FACES, _FAMILIES
    if list(faces) == _FACES:
        return
    _FACES = list(faces)
    by_family: dict[str, list[int]] = {}
    for face_index, face in enumerate(_FACES):
        by_family.setdefault(face.family, []).append(face_index)
    _FAMILIES = [by_family[family] for family in sorted(by_family)]
    _FONTS.clear()
    _GLYPHS.clear()


def faces() -> list[FontFace]:
    """The faces set by `use_faces`, in order."""
    return _FACES


def families() -> list[list[int]]:
    """Indices of the faces set by `use_faces`, grouped by family (families sorted by name)."""
    return _FAMILIES


def glyph(face_index: int, char: str, instance: str) -> tuple[np.ndarray, int]:
    """Tight uint8 bitmap of `char` and its top offset from the font's ascender line."""
    key = (face_index, char, instance)
    if key not in _GLYPHS:
        font = _FONTS.get((face_index, instance))
        if font is None:  # one font object per instance: switching instances is slow
            face = _FACES[face_index]
            font = ImageFont.truetype(face.path, GLYPH_PIXELS, index=face.index,
                                      layout_engine=ImageFont.Layout.BASIC)
            if instance:
                font.set_variation_by_name(instance)
            _FONTS[face_index, instance] = font
        mask, (_, top) = font.getmask2(char, mode="L")
        # Wrapped in an Image, the core bitmap is copied out in one go; bytes(mask) reads it a
        # pixel at a time and took three times as long as FreeType's rendering.
        bitmap = np.asarray(Image.Image()._new(mask))
        inked = bitmap > 24
        rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
        if rows.size == 0:
            bitmap, top = np.zeros((8, 8), np.uint8), 0
        else:
            bitmap = bitmap[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            top += int(rows[0])
        if len(_GLYPHS) >= GLYPH_CACHE_SIZE:
            _GLYPHS.clear()  # bounded memory with thousands of faces; refilling is cheap
        _GLYPHS[key] = (np.ascontiguousarray(bitmap), top)
    return _GLYPHS[key]
