"""The per-user cache of font checks: answers equal to checking afresh, re-checks of changed
files, and a cache that is damaged, stale or unwritable never changes what is found."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from charrec.data.builtin import font_cache, fonts
from charrec.data.builtin.fonts import FontFace, default_font_dirs
from charrec.errors import CharrecWarning

MATPLOTLIB_FONTS = default_font_dirs()[0]


@pytest.fixture
def font_files(tmp_path):
    """Copies of four of matplotlib's fonts (their modification times can be changed)."""
    folder = tmp_path / "fonts"
    folder.mkdir()
    for name in ("DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "cmr10.ttf", "STIXGeneral.ttf"):
        shutil.copy(MATPLOTLIB_FONTS / name, folder / name)
    return sorted(folder.iterdir())


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(font_cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


class CountingCheck:
    def __init__(self) -> None:
        self.checked: list[str] = []

    def __call__(self, path):
        self.checked.append(path.name)
        return fonts._faces_in(path)


def test_second_lookup_checks_nothing_and_finds_the_same_faces(font_files, cache_dir):
    first, second = CountingCheck(), CountingCheck()
    found = font_cache.faces_of_files(font_files, first, FontFace)
    again = font_cache.faces_of_files(font_files, second, FontFace)
    assert first.checked == [path.name for path in font_files] and second.checked == []
    assert again == found == {path: fonts._faces_in(path) for path in font_files}
    assert all(found.values())  # real faces, with their letters
    assert (cache_dir / font_cache.CACHE_FILE).is_file()


def test_a_changed_file_is_checked_again(font_files, cache_dir):
    font_cache.faces_of_files(font_files, CountingCheck(), FontFace)
    changed = font_files[1]
    status = changed.stat()
    os.utime(changed, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    check = CountingCheck()
    font_cache.faces_of_files(font_files, check, FontFace)
    assert check.checked == [changed.name]


@pytest.mark.parametrize("damage", ["not json {", "[]", '{"stamp": 1, "files": 2}',
                                    "broken entries"])
def test_a_damaged_cache_is_ignored_and_rewritten(font_files, cache_dir, damage):
    expected = font_cache.faces_of_files(font_files, CountingCheck(), FontFace)
    cache_file = cache_dir / font_cache.CACHE_FILE
    if damage == "broken entries":
        cached = json.loads(cache_file.read_text())
        first, second = sorted(cached["files"])[:2]
        cached["files"][first] = "no entry"
        cached["files"][second]["faces"] = [{"path": 3}]
        damage = json.dumps(cached)
    cache_file.write_text(damage)
    check = CountingCheck()
    assert font_cache.faces_of_files(font_files, check, FontFace) == expected
    assert check.checked  # re-checked, not trusted
    check = CountingCheck()
    assert font_cache.faces_of_files(font_files, check, FontFace) == expected
    assert check.checked == []  # and the rewritten cache is whole again


def test_a_new_check_version_invalidates_everything(font_files, cache_dir, monkeypatch):
    font_cache.faces_of_files(font_files, CountingCheck(), FontFace)
    monkeypatch.setattr(font_cache, "CHECK_VERSION", font_cache.CHECK_VERSION + 1)
    check = CountingCheck()
    font_cache.faces_of_files(font_files, check, FontFace)
    assert len(check.checked) == len(font_files)


def test_an_unwritable_cache_still_finds_the_fonts_with_one_warning(font_files, tmp_path,
                                                                    monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(font_cache.CACHE_DIR_ENV, str(blocker / "cache"))
    with pytest.warns(CharrecWarning) as caught:
        found = font_cache.faces_of_files(font_files, CountingCheck(), FontFace)
    assert found == {path: fonts._faces_in(path) for path in font_files}
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "could not write the font cache" in message and "not a directory" in message
    assert font_cache.CACHE_DIR_ENV in message


def test_a_file_that_is_no_font_has_no_faces(font_files, cache_dir, tmp_path):
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    found = font_cache.faces_of_files([*font_files, broken], CountingCheck(), FontFace)
    assert found[broken] == [] and all(found[path] for path in font_files)


def test_a_file_the_check_cannot_read_is_left_out_and_checked_again(font_files, cache_dir):
    unreadable = font_files[0]

    class FailingCheck(CountingCheck):
        def __call__(self, path):
            if path == unreadable:
                self.checked.append(path.name)
                raise OSError("permission denied")
            return super().__call__(path)

    assert unreadable not in font_cache.faces_of_files(font_files, FailingCheck(), FontFace)
    check = CountingCheck()
    assert font_cache.faces_of_files(font_files, check, FontFace)[unreadable]
    assert check.checked == [unreadable.name]


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(font_cache.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert font_cache.cache_dir() == tmp_path / "xdg" / "charrec"
    monkeypatch.setenv(font_cache.CACHE_DIR_ENV, str(tmp_path / "own"))
    assert font_cache.cache_dir() == tmp_path / "own"
