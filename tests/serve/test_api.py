"""The HTTP API of `charrec serve` through Starlette's TestClient: good images of several
formats (raw body and multipart), the same JSON as `charrec predict --json`, and every kind of
bad request answered with a 4xx and `{"error": ...}` while the server goes on serving."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="needs the serve extra: pip install 'charrec[serve]'")
pytest.importorskip("starlette.testclient", reason="Starlette's TestClient needs httpx2 (the "
                    "dev extra)")

from starlette.testclient import TestClient  # noqa: E402

from charrec.serve.app import create_app  # noqa: E402
from charrec.serve.reader import Reader, load_reader  # noqa: E402
from tests.helpers import invoke  # noqa: E402
from tests.serve.images import (  # noqa: E402
    FORMATS,
    encoded,
    letter_image,
    png_bomb,
    word_image,
)

KEYS = {"prediction", "probability", "top_k", "model"}


@pytest.fixture(scope="module")
def reader() -> Reader:
    return load_reader("bundled")


@pytest.fixture(scope="module")
def client(reader):
    with TestClient(create_app(reader, max_body=200_000)) as client:
        yield client


def assert_error(response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert "Traceback" not in body["error"] and "\n" not in body["error"]
    for fragment in fragments:
        assert fragment in body["error"], body["error"]


@pytest.mark.parametrize("format", FORMATS)
def test_reads_a_letter_in_each_format_as_raw_body_and_as_multipart(client, format):
    data = encoded(letter_image("L"), format)
    raw = client.post("/api/predict", content=data)
    upload = client.post("/api/predict", files={"image": (f"l.{format.lower()}", data)})
    for response in (raw, upload):
        assert response.status_code == 200, response.text
        answer = response.json()
        assert KEYS <= set(answer) <= KEYS | {"warning"}
        assert answer["prediction"] == "L"
        assert answer["model"].startswith("bundled (")
        assert answer["top_k"] == [{"letter": "L", "probability": answer["probability"]}]
    assert raw.json() == upload.json()


def test_the_answer_is_what_predict_json_prints_for_the_same_file(client, tmp_path):
    for letter in "LTO":
        path = tmp_path / f"{letter}.png"
        path.write_bytes(encoded(letter_image(letter, size=48)))
        result = invoke("predict", path, "--model", "bundled", "--top-k", "5", "--json")
        assert result.exit_code == 0, result.output
        expected = json.loads(result.stdout)[0]
        del expected["path"]
        answer = client.post("/api/predict?top_k=5", content=path.read_bytes()).json()
        assert answer == expected


def test_predicts_warnings_come_through(client):
    blank = encoded(letter_image("L").point(lambda value: 255))
    answer = client.post("/api/predict", content=blank).json()
    assert answer["warning"].startswith("no letter found")
    answer = client.post("/api/predict", content=encoded(word_image("ABC"))).json()
    assert answer["warning"].startswith("looks like 3 letters")


@pytest.mark.parametrize(("body", "fragment"), [
    (b"", "empty request body"),
    (b"this is not an image\n", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image"),  # a PNG signature, then nothing sensible
    (encoded(letter_image("L"))[:60], "image"),  # a truncated PNG
    (png_bomb(), "too large"),
])
def test_bad_bodies_get_400_with_one_line(client, body, fragment):
    assert_error(client.post("/api/predict", content=body), 400, fragment)
    assert client.post("/api/predict", content=encoded(letter_image())).status_code == 200


def test_bad_multipart_requests_get_400(client):
    assert_error(client.post("/api/predict", files={"photo": ("l.png", b"x")}), 400,
                 "no multipart field 'image'")
    assert_error(client.post("/api/predict", data={"image": "l.png"},
                             files={"other": ("x", b"x")}), 400, "must be a file upload")
    assert_error(client.post("/api/predict", files={"image": ("x.png", b"junk")}), 400,
                 "x.png: not an image")
    assert_error(client.post("/api/predict", files={"image": ("x.png", png_bomb())}), 400,
                 "too large")


def test_too_many_pixels_for_the_server_is_refused_before_decoding(reader):
    small = dataclasses.replace(reader, max_pixels=64 * 64 - 1)
    with TestClient(create_app(small)) as client:
        assert_error(client.post("/api/predict", content=encoded(letter_image(size=64))), 400,
                     "too large", str(64 * 64 - 1))
        assert client.post("/api/predict", content=encoded(letter_image(size=63))).is_success


def test_an_oversized_body_gets_413_declared_or_streamed(client):
    big = b"\x00" * 200_001
    assert_error(client.post("/api/predict", content=big), 413, "200000 bytes")
    chunks = (b"\x00" * 50_000 for _ in range(5))  # no Content-Length: counted as it arrives
    assert_error(client.post("/api/predict", content=chunks), 413, "too large")
    assert_error(client.post("/api/predict", files={"image": ("big.png", big)}), 413)
    assert client.post("/api/predict", content=encoded(letter_image())).status_code == 200


def test_bad_top_k_and_unknown_paths_get_json_errors(client):
    image = encoded(letter_image())
    for value in ("0", "27", "x", "-1"):
        assert_error(client.post(f"/api/predict?top_k={value}", content=image), 400, "top_k")
    assert_error(client.get("/api/nothing"), 404)
    assert_error(client.get("/api/predict"), 405)


def test_concurrent_requests_each_get_their_own_answer(client):
    images = {letter: encoded(letter_image(letter)) for letter in "LTO"}
    alone = {letter: client.post("/api/predict?top_k=3", content=data).json()
             for letter, data in images.items()}
    order = [letter for _ in range(8) for letter in "LTO"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda letter: client.post("/api/predict?top_k=3",
                                                           content=images[letter]), order))
    assert [answer.status_code for answer in answers] == [200] * len(order)
    assert [answer.json() for answer in answers] == [alone[letter] for letter in order]


def test_a_bug_is_a_500_without_traceback_and_the_server_goes_on(reader):
    class Broken(Reader):
        calls = 0

        def read(self, data, top_k=1, name="image"):
            Broken.calls += 1
            if Broken.calls == 1:
                raise RuntimeError("secret internals")
            return super().read(data, top_k, name)

    broken = Broken(**{field.name: getattr(reader, field.name)
                       for field in dataclasses.fields(reader)})
    with TestClient(create_app(broken), raise_server_exceptions=False) as client:
        response = client.post("/api/predict", content=encoded(letter_image()))
        assert_error(response, 500, "internal error (RuntimeError)")
        assert "secret" not in response.text
        assert client.post("/api/predict", content=encoded(letter_image())).status_code == 200


def test_model_health_and_headers(client):
    model = client.get("/api/model").json()
    assert model["model"].startswith("bundled (") and model["backend"] == "onnx"
    assert model["classes"] == [chr(code) for code in range(ord("A"), ord("Z") + 1)]
    assert client.get("/health").json() == {"status": "ok"}
    headers = client.get("/").headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_the_page_and_all_it_loads_come_from_charrec(client):
    import re

    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    links = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert links and all(link.startswith("/static/") or link.startswith("data:")
                         for link in links), links
    for link in links:
        if link.startswith("/static/"):
            served = client.get(link)
            assert served.status_code == 200, link
            assert not re.search(r"https?://(?!HOST)|//cdn", served.text), link
    assert client.get("/static/../app.py").status_code == 404


def test_the_bundled_model_answers_on_onnx_runtime_without_torch():
    code = "\n".join([
        "import sys",
        "from starlette.testclient import TestClient",
        "from charrec.serve.app import create_app",
        "from charrec.serve.reader import load_reader",
        "from tests.serve.images import encoded, letter_image",
        "with TestClient(create_app(load_reader('bundled'))) as client:",
        "    answer = client.post('/api/predict', content=encoded(letter_image())).json()",
        "assert answer['prediction'] == 'L', answer",
        "assert 'torch' not in sys.modules, 'the server imported torch'",
    ])
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=root, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_torch_backend_gives_the_same_answers(client):
    with TestClient(create_app(load_reader("bundled", backend="torch"))) as on_torch:
        assert on_torch.get("/api/model").json()["backend"] == "torch"
        for letter in "LTO":
            data = encoded(letter_image(letter))
            onnx = client.post("/api/predict?top_k=3", content=data).json()
            torch = on_torch.post("/api/predict?top_k=3", content=data).json()
            assert [entry["letter"] for entry in torch["top_k"]] == \
                [entry["letter"] for entry in onnx["top_k"]]
            for ours, theirs in zip(torch["top_k"], onnx["top_k"], strict=True):
                assert ours["probability"] == pytest.approx(theirs["probability"], abs=1e-4)


def test_an_onnx_file_is_served_too():
    from importlib import resources

    with resources.as_file(resources.files("charrec.models") / "bundled.onnx") as path:
        reader = load_reader(str(path))
    with TestClient(create_app(reader)) as client:
        answer = client.post("/api/predict", content=encoded(letter_image())).json()
    assert answer["prediction"] == "L"
    assert answer["model"].startswith(str(path)) and "ONNX Runtime" in answer["model"]
