"""Load on `charrec serve`: N concurrent clients POST letter images to /api/predict.

    python benchmarks/serve_load.py [--clients 8] [--requests 400] [--model bundled]
                                    [--backend auto|onnx|torch] [--url URL]

Starts `charrec serve --port 0` in a process of its own (or uses the server at --url), warms it
up, then runs --requests requests spread over --clients threads, each on its own keep-alive
connection, each request a PNG of a drawn letter as the raw body with `?top_k=5` (what the
page sends). Printed: requests/s, latency p50/p90/p99/max, errors (any status but 200, or a
failed connection), and the load average before and after (the machine may be shared).
Target: 8 clients, 400 requests, 0 errors, p99 <= 100 ms on 2 cores with the bundled model.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]


def letter_pngs() -> list[bytes]:
    """A few letters drawn with Pillow, as PNG files in memory (280x280 like the page's canvas)."""
    images = []
    for letter in "LTKOA":
        image = Image.new("L", (280, 280), 255)
        ImageDraw.Draw(image).text((140, 140), letter, fill=0, anchor="mm",
                                   font=ImageFont.load_default(size=200))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def start_server(model: str, backend: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                     os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "charrec", "serve", "--model", model, "--backend", backend,
               "--port", "0"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True, env=env)
    lines = []
    for line in process.stderr:
        lines.append(line)
        found = re.search(r"Serving (http://\S+)/", line)
        if found:
            # keep reading (and dropping) the access log so the server never blocks on a full pipe
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
            return process, found.group(1)
    raise SystemExit("charrec serve did not start:\n" + "".join(lines))


def client(url: str, images: list[bytes], count: int, offset: int,
           latencies: list[float], errors: list[str]) -> None:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    for number in range(count):
        body = images[(offset + number) % len(images)]
        started = time.perf_counter()
        try:
            connection.request("POST", "/api/predict?top_k=5", body,
                               {"Content-Type": "image/png"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors.append(f"HTTP {response.status}")
        except (OSError, http.client.HTTPException) as error:
            errors.append(f"{type(error).__name__}: {error}")
            connection.close()
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        latencies.append(time.perf_counter() - started)
    connection.close()


def run(url: str, clients: int, requests: int) -> tuple[list[float], list[str], float]:
    images = letter_pngs()
    latencies: list[float] = []
    errors: list[str] = []
    shares = [requests // clients + (index < requests % clients) for index in range(clients)]
    threads = [threading.Thread(target=client, args=(url, images, share, index, latencies,
                                                     errors))
               for index, share in enumerate(shares)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--backend", default="auto", help="auto, onnx or torch")
    parser.add_argument("--url", help="an already running server (default: start one)")
    args = parser.parse_args()
    process = None
    if args.url is None:
        process, url = start_server(args.model, args.backend)
    else:
        url = args.url.rstrip("/")
    try:
        run(url, min(args.clients, 4), 40)  # warm-up: first requests, thread pool, caches
        load_before = os.getloadavg()
        latencies, errors, wall = run(url, args.clients, args.requests)
        load_after = os.getloadavg()
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    milliseconds = [1000 * value for value in latencies]
    p99 = percentile(milliseconds, 0.99)
    print(f"{args.requests} requests from {args.clients} clients to {url} "
          f"({os.cpu_count()} cores)")
    print(f"throughput {len(latencies) / wall:.0f} requests/s over {wall:.2f} s")
    print(f"latency ms: p50 {statistics.median(milliseconds):.1f}  "
          f"p90 {percentile(milliseconds, 0.90):.1f}  p99 {p99:.1f}  max {max(milliseconds):.1f}")
    print(f"errors {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print("load average 1/5/15 min: before " + " ".join(f"{value:.2f}" for value in load_before)
          + ", after " + " ".join(f"{value:.2f}" for value in load_after))
    verdict = "met" if not errors and p99 <= 100 else "NOT met"
    print(f"target (0 errors, p99 <= 100 ms): {verdict}")


if __name__ == "__main__":
    main()
