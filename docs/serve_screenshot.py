"""Make docs/serve.png: the page of `charrec serve` after drawing a capital L, as headless
chromium shows it (the page tests' browser and server, `tests/serve/browser.py`).

    python docs/serve_screenshot.py [--out docs/serve.png]

Needs the dev extra (selenium) and Debian's chromium and chromium-driver. The PNG is reduced to
a 64-colour palette so it stays small (well under 200 KB).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageChops  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from charrec.serve.app import create_app  # noqa: E402
from charrec.serve.reader import load_reader  # noqa: E402
from tests.serve.browser import chromium, missing_browser, serving  # noqa: E402
from tests.serve.test_page import draw  # noqa: E402

# a hand-drawn capital L: a slightly leaning upright, then the foot (offsets from the centre)
L_STROKES = [[(-52, -105), (-55, -20), (-57, 88)], [(-57, 88), (10, 86), (72, 90)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.png")
    args = parser.parse_args()
    reason = missing_browser()
    if reason:
        raise SystemExit(f"needs a browser: {reason}")
    with serving(create_app(load_reader("bundled"))) as url, chromium() as driver:
        driver.set_window_size(820, 700)
        driver.get(url + "/")
        wait = WebDriverWait(driver, 30, poll_frequency=0.05)
        wait.until(lambda _: driver.find_element("id", "model").text.startswith("bundled"))
        draw(driver, L_STROKES)
        wait.until(lambda _: driver.find_element("tag name", "body").get_attribute("data-state")
                   == "idle" and len(driver.find_elements("css selector", "#chart li")) == 5)
        png = driver.get_screenshot_as_png()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    background = Image.new("RGB", image.size, image.getpixel((image.width - 1, image.height - 1)))
    bottom = ImageChops.difference(image, background).getbbox()[3]  # drop the empty space below
    image = image.crop((0, 0, image.width, min(image.height, bottom + 20)))
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"{args.out}: {image.width}x{image.height}, {args.out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
