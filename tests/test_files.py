"""charrec.files: atomic writes that Ctrl-C cannot cut in half, the usual permissions, keeping
the previous file, and worker processes that leave Ctrl-C to their parent."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from charrec.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from charrec.config import make_config
from charrec.errors import WriteError
from charrec.files import (
    atomic_write,
    check_writable,
    children_ignore_interrupt,
    deferred_interrupt,
    keep_previous,
    previous_path,
)
from charrec.nn.model import build_model


def small_checkpoint(seed: int = 0) -> dict:
    config = make_config({"hidden": "64", "norm_size": "16,16"})
    torch.manual_seed(seed)
    metrics = {"best_val_accuracy": 0.5, "best_epoch": 1, "history": []}
    return make_checkpoint(config, build_model(config, 26).state_dict(), metrics)


def ctrl_c_to_self() -> None:
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("when", ["before writing", "halfway", "after writing"])
def test_ctrl_c_during_a_checkpoint_write_waits_for_the_complete_file(tmp_path, when):
    path = save_checkpoint(tmp_path / "model.pth", small_checkpoint(seed=0))
    checkpoint = small_checkpoint(seed=1)

    def write(handle) -> None:
        if when == "before writing":
            ctrl_c_to_self()
        data = io.BytesIO()
        torch.save(checkpoint, data)
        half = len(data.getvalue()) // 2
        handle.write(data.getvalue()[:half])
        if when == "halfway":
            ctrl_c_to_self()
        handle.write(data.getvalue()[half:])
        if when == "after writing":
            ctrl_c_to_self()

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write)  # the interrupt is raised once the new file is in place
    assert signal.getsignal(signal.SIGINT) is handler
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["state_dict"]["layers.0.weight"],
                       checkpoint["state_dict"]["layers.0.weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]


def test_a_failed_write_removes_its_temp_file_and_still_delivers_the_interrupt(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def write(handle) -> None:
        handle.write(b"new")
        ctrl_c_to_self()
        raise OSError("disk full")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_deferred_interrupt_is_delivered_once_and_restores_the_handler():
    calls: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        with deferred_interrupt():
            ctrl_c_to_self()
            ctrl_c_to_self()
            assert calls == []
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_sigterm_and_sighup_are_deferred_where_a_python_handler_takes_them(tmp_path):
    """The CLI makes SIGTERM and SIGHUP act like Ctrl-C; a file being written is finished
    first. Without a Python handler (the default action) they are left alone."""
    calls: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: calls.append(signum))
                for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        def write(handle) -> None:
            handle.write(b"new")
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGHUP)
            assert calls == []
            handle.write(b" file")

        atomic_write(tmp_path / "out.bin", write)
        assert calls == [signal.SIGTERM]  # the first one, once, after the file is in place
        assert (tmp_path / "out.bin").read_bytes() == b"new file"
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    with deferred_interrupt():
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_deferred_interrupt_leaves_an_ignored_sigint_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_interrupt():
            ctrl_c_to_self()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_atomic_write_from_another_thread_does_not_touch_signal_handlers(tmp_path):
    handler, errors = signal.getsignal(signal.SIGINT), []

    def work() -> None:
        try:
            atomic_write(tmp_path / "t.bin", lambda handle: handle.write(b"x"))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == [] and (tmp_path / "t.bin").read_bytes() == b"x"
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "f.png", lambda handle: handle.write(b"x"))
        backup = keep_previous(path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode
    assert backup is not None and backup.stat().st_mode & 0o777 == mode


def test_keep_previous_copies_and_leaves_the_file_in_place(tmp_path):
    path = tmp_path / "recognition.pth"
    assert keep_previous(path) is None
    path.write_bytes(b"first")
    backup = keep_previous(path)
    assert backup == previous_path(path) == tmp_path / "recognition.prev.pth"
    assert path.read_bytes() == b"first" and backup.read_bytes() == b"first"
    atomic_write(path, lambda handle: handle.write(b"second"))  # what training does next
    assert backup.read_bytes() == b"first"
    keep_previous(path)
    assert backup.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recognition.prev.pth",
                                                          "recognition.pth"]


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_children_started_in_the_block_ignore_ctrl_c_and_the_parent_still_gets_it():
    probe = ("import signal, sys; "
             "sys.stdout.write(str(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])))")
    with pytest.raises(KeyboardInterrupt):
        with children_ignore_interrupt():
            child = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                   text=True, check=True)
            ctrl_c_to_self()  # held until the block ends, then delivered here
    assert child.stdout == "True"
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    outside = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert outside.stdout == "False"


def test_previous_path_keeps_the_suffix():
    assert previous_path(Path("a/b/model.pth")) == Path("a/b/model.prev.pth")
    assert previous_path(Path("plot.png")) == Path("plot.prev.png")


def test_keeping_twice_without_a_new_file_in_between_leaves_no_temp_file(tmp_path):
    """A run interrupted before it saved anything, then another run: the copy is already the
    same file (a hard link), where a rename would silently do nothing and leave the temp."""
    path = tmp_path / "m.pth"
    path.write_bytes(b"model")
    assert keep_previous(path) == keep_previous(path) == previous_path(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.prev.pth", "m.pth"]
    assert previous_path(path).read_bytes() == b"model"


# ------------------------------------------------------------------ disk errors (issue 23)


class _FullDisk(io.RawIOBase):
    """A file whose writes fail, as on a full disk, once `room` bytes are written."""

    def __init__(self, handle, room: int):
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)


def test_a_disk_error_inside_torch_save_is_one_write_error(tmp_path):
    path = save_checkpoint(tmp_path / "model.pth", small_checkpoint(seed=0))
    before = path.read_bytes()
    checkpoint = small_checkpoint(seed=1)
    with pytest.raises(RuntimeError):  # what torch.save makes of the OSError by itself
        torch.save(checkpoint, _FullDisk(io.BytesIO(), room=1000))
    with pytest.raises(WriteError) as caught:
        atomic_write(path, lambda handle: torch.save(checkpoint, _FullDisk(handle, room=1000)),
                     "the checkpoint")
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value) == (f"could not write the checkpoint {path}: no space left on "
                                 f"device; the previous file is unchanged")
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]


def test_a_programming_error_inside_a_write_stays_loud(tmp_path):
    with pytest.raises(ZeroDivisionError):
        atomic_write(tmp_path / "x.bin", lambda handle: 1 / 0)
    assert list(tmp_path.iterdir()) == []


def test_keep_previous_on_a_failing_disk_is_one_write_error(tmp_path, monkeypatch):
    path = tmp_path / "model.pth"
    path.write_bytes(b"old")

    def no_room(*args, **kwargs):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(os, "link", no_room)  # a quota is not "no hard links": no copy either
    with pytest.raises(WriteError, match=r"could not keep a copy of .*model\.pth as .*"
                                         r"model\.prev\.pth: disk quota exceeded; .* unchanged"):
        keep_previous(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]


def test_check_writable_looks_at_the_nearest_existing_folder(tmp_path):
    check_writable(tmp_path / "not" / "yet" / "made", "the thing", "nothing was done")
    assert list(tmp_path.iterdir()) == []  # made nothing, left no probe
    (tmp_path / "a file").write_text("x")
    with pytest.raises(WriteError, match="cannot write the thing: .*a file is a file, not a "
                                         "folder; nothing was done"):
        check_writable(tmp_path / "a file" / "sub", "the thing", "nothing was done")


def test_finished_rows_rerun_what_the_disk_failed():
    from charrec.sweep.runner import finished_rows

    rows = [{"index": 0, "status": "failed", "rerun": True},
            {"index": 1, "status": "failed", "reason": "diverged"},
            {"index": 2, "status": "ok"},
            {"index": 0, "status": "ok"},  # trial 0 again, after --resume
            {"index": 3, "status": "failed", "rerun": True}]
    assert [(row["index"], row["status"]) for row in finished_rows(rows)] == \
        [(0, "ok"), (1, "failed"), (2, "ok")]
