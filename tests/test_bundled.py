"""The bundled model: package data under 5 MB, safe to load, made by its recipe, in the wheel,
carrying its measurements and no path of the machine that trained it; `charrec predict IMG`
from an empty folder answers with it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image, ImageDraw, ImageFont

from charrec.checkpoint import checkpoint_config, load_checkpoint
from charrec.config import make_config
from tests.helpers import invoke

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "charrec" / "models" / "bundled.pth"
RECIPE = ROOT / "configs" / "bundled.yaml"


def _strings(value: object):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def test_bundled_model_is_small_safe_and_made_by_its_recipe() -> None:
    assert BUNDLED.stat().st_size < 5 * 1024 * 1024
    checkpoint = load_checkpoint(BUNDLED)  # weights_only=True inside
    recipe = yaml.safe_load(RECIPE.read_text())
    defaults = make_config({})
    expected = make_config(recipe["train"], {"data_dir": defaults.data_dir,
                                             "out": defaults.out})
    # as charrec reads it: options added since (e.g. `from_model`) take their defaults
    assert checkpoint_config(checkpoint, BUNDLED) == expected
    assert "resume" not in checkpoint
    bundle = checkpoint["bundle"]
    assert bundle["recipe"] == RECIPE.read_text()
    assert bundle["train_seconds"] > 0 and bundle["charrec_version"]
    for name in ("chars74k_val", "handwriting_dev"):
        measured = bundle["realdev"][name]
        assert measured["accuracy"] == measured["n_correct"] / measured["n_images"]
    for text in _strings({key: value for key, value in checkpoint.items()
                          if key != "state_dict"}):
        assert not any(part in text for part in ("/work/", "/tmp/", "/home/", "/root/")), text


def _letter_image(path: Path, letter: str) -> Path:
    image = Image.new("L", (64, 64), 235)
    font = ImageFont.load_default(size=48)
    ImageDraw.Draw(image).text((32, 32), letter, fill=20, font=font, anchor="mm")
    image.save(path)
    return path


def test_predict_in_an_empty_folder_uses_the_bundled_model(tmp_path: Path,
                                                           monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no saved_models/recognition.pth here
    image = _letter_image(tmp_path / "h.png", "H")
    result = invoke("predict", image)
    assert result.exit_code == 0, result.output
    assert "bundled" in result.stderr
    assert "Prediction: H" in result.stdout


def test_the_wheel_carries_the_bundled_model(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(tmp_path), str(ROOT)], check=True,
                   env={**os.environ, "PIP_NO_INDEX": "1"}, capture_output=True)
    wheel = next(tmp_path.glob("charrec-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        info = archive.getinfo("charrec/models/bundled.pth")
        assert info.file_size == BUNDLED.stat().st_size
    assert torch.load(BUNDLED, map_location="cpu", weights_only=True)["format_version"]
