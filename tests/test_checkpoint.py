"""The checkpoint file: round trip, atomic writes, and refusing anything that is not ours."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from charrec import CLASSES, __version__
from charrec import checkpoint as checkpoint_module
from charrec.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    load_model,
    make_checkpoint,
    save_checkpoint,
)
from charrec.cli import app
from charrec.config import make_config
from charrec.errors import CheckpointError
from charrec.nn.model import build_model


def _checkpoint(seed: int = 0, **options) -> tuple[dict, torch.nn.Module]:
    config = make_config({"hidden": "8,6", "norm_size": "6,5", "act": "tanh", **options})
    torch.manual_seed(seed)
    model = build_model(config, 26)
    metrics = {"best_val_accuracy": 0.5, "best_epoch": 3, "history": [{"epoch": 1}]}
    return make_checkpoint(config, model.state_dict(), metrics), model


def _only_plain_types(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(key, str) and _only_plain_types(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_only_plain_types(item) for item in value)
    return isinstance(value, str | int | float | bool | type(None) | torch.Tensor)


def test_round_trip_rebuilds_the_model_from_the_file_alone(tmp_path: Path) -> None:
    checkpoint, model = _checkpoint()
    path = save_checkpoint(tmp_path / "sub" / "model.pth", checkpoint)
    loaded = load_checkpoint(path)
    assert loaded["format_version"] == FORMAT_VERSION and loaded["charrec_version"] == __version__
    assert loaded["classes"] == list(CLASSES)
    assert loaded["config"]["hidden"] == [8, 6] and loaded["config"]["norm_size"] == [6, 5]
    assert loaded["metrics"]["best_epoch"] == 3
    assert _only_plain_types(loaded)
    rebuilt, config, _ = load_model(path)
    assert (config.hidden, config.act, config.norm_size) == ((8, 6), "tanh", (6, 5))
    assert not rebuilt.training
    images = torch.randn(3, 6, 5)
    torch.testing.assert_close(rebuilt(images), model(images), rtol=0, atol=0)


def test_file_loads_with_weights_only(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "model.pth", _checkpoint()[0])
    assert "state_dict" in torch.load(path, map_location="cpu", weights_only=True)


def test_failed_write_keeps_the_previous_file_and_leaves_no_temp_files(tmp_path: Path,
                                                                     monkeypatch) -> None:
    path = save_checkpoint(tmp_path / "model.pth", _checkpoint(seed=0)[0])
    before = path.read_bytes()
    real_save = torch.save

    def crash_halfway(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        handle.truncate(handle.tell() // 2)
        raise KeyboardInterrupt  # Ctrl-C (or a crash) in the middle of writing

    monkeypatch.setattr(checkpoint_module.torch, "save", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _checkpoint(seed=1)[0])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]
    load_checkpoint(path)


def test_unpicklable_content_fails_before_replacing(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "model.pth", _checkpoint()[0])
    before = path.read_bytes()
    broken = {**_checkpoint(seed=2)[0], "metrics": {"callback": lambda: None}}
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint(path, broken)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found.*charrec train"):
        load_checkpoint(tmp_path / "none.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path)  # a folder


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes(tmp_path: Path, seed: int) -> None:
    """Fixed seeds (seeds 2 and 14 gave IndexError before any unpickler failure became a
    CheckpointError); tests/test_fuzz.py tries thousands more, derandomised."""
    path = tmp_path / "random.pth"
    path.write_bytes(random.Random(seed).randbytes(4096))
    with pytest.raises(CheckpointError, match="random.pth"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "model.pth", _checkpoint()[0])
    data = path.read_bytes()
    for keep in (len(data) // 2, 100, 0):
        path.write_bytes(data[:keep])
        with pytest.raises(CheckpointError, match="model.pth"):
            load_checkpoint(path)


def test_bare_state_dict_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save(_checkpoint()[1].state_dict(), path)
    with pytest.raises(CheckpointError, match="not a charrec checkpoint"):
        load_checkpoint(path)


def test_wrong_format_version(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "future.pth", {**_checkpoint()[0], "format_version": 99})
    with pytest.raises(CheckpointError, match=f"version 99.*reads version {FORMAT_VERSION}"):
        load_checkpoint(path)


def test_missing_keys(tmp_path: Path) -> None:
    checkpoint = _checkpoint()[0]
    del checkpoint["classes"]
    path = save_checkpoint(tmp_path / "partial.pth", checkpoint)
    with pytest.raises(CheckpointError, match="lacks classes"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    checkpoint = _checkpoint()[0]
    checkpoint["config"]["hidden"] = [9, 6]
    path = save_checkpoint(tmp_path / "mismatch.pth", checkpoint)
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(path)


def test_invalid_config_inside(tmp_path: Path) -> None:
    checkpoint = _checkpoint()[0]
    checkpoint["config"]["act"] = "swish"
    path = save_checkpoint(tmp_path / "badconfig.pth", checkpoint)
    with pytest.raises(CheckpointError, match="invalid config.*--act"):
        load_model(path)


class _RunsCode:
    """Unpickling this calls os.system: the classic malicious pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle"])
@pytest.mark.parametrize("command", ["test", "predict"])
def test_pickle_that_runs_code_is_refused(container: str, command: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {**_checkpoint()[0], "metrics": _RunsCode(marker)}
    if container == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("L", (8, 8), 255).save(image)
    args = ["--model", str(path)] + (["--im-path", str(image)] if command == "predict" else [])
    result = CliRunner().invoke(app, [command, *args])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "evil.pth" in lines[0] and "Traceback" not in result.output
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_the_malicious_payload_is_live(tmp_path: Path) -> None:
    """Control for the test above: an unsafe load really would run the code."""
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"metrics": _RunsCode(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()
