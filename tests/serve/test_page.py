"""The drawing page in a real browser (headless chromium through selenium): draw a capital L
with pointer events and read the answer and the bar chart off the page; undo, clear, a dot's
warning, and an image chosen from disk. Skips where no browser is installed (fails under CI)."""

from __future__ import annotations

import pytest

from tests.serve.browser import chromium, require_browser, serving
from tests.serve.images import encoded, letter_image

pytest.importorskip("uvicorn", reason="needs the serve extra: pip install 'charrec[serve]'")

TIMEOUT = 20  # seconds to wait for an answer (a busy shared machine)


@pytest.fixture(scope="module")
def page():
    require_browser()
    from charrec.serve.app import create_app
    from charrec.serve.reader import load_reader

    reader = load_reader("bundled")
    with serving(create_app(reader)) as url, chromium() as driver:
        driver.get(url + "/")
        wait_for(driver, lambda: driver.find_element("id", "model").text.startswith("bundled"))
        yield driver, reader


def wait_for(driver, condition) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, TIMEOUT, poll_frequency=0.05).until(lambda _: condition())


def answers(driver) -> int:
    return int(driver.find_element("tag name", "body").get_attribute("data-answers"))


def settled(driver, after: int) -> None:
    """Wait until an answer newer than `after` is shown and no request is in flight."""
    body = driver.find_element("tag name", "body")
    wait_for(driver, lambda: answers(driver) > after and body.get_attribute("data-state") == "idle")


def chart(driver) -> list[tuple[str, float]]:
    rows = driver.find_elements("css selector", "#chart li")
    return [(row.get_attribute("data-letter"), float(row.get_attribute("data-probability")))
            for row in rows]


def draw(driver, strokes, kind: str = "mouse") -> None:
    """Draw `strokes` (lists of points, offsets from the canvas centre in CSS pixels) with a
    pointer of `kind` (mouse, pen or touch): pointerdown, pointermoves, pointerup per stroke."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    canvas = driver.find_element("id", "canvas")
    kinds = {"mouse": interaction.POINTER_MOUSE, "pen": interaction.POINTER_PEN,
             "touch": interaction.POINTER_TOUCH}
    for stroke in strokes:
        actions = ActionBuilder(driver, mouse=PointerInput(kinds[kind], kind), duration=10)
        pointer = actions.pointer_action
        pointer.move_to(canvas, *stroke[0]).pointer_down()
        x, y = stroke[0]
        for target_x, target_y in stroke[1:]:
            steps = 8
            for step in range(1, steps + 1):
                next_x = round(x + (target_x - x) * step / steps)
                next_y = round(y + (target_y - y) * step / steps)
                pointer.move_to(canvas, next_x, next_y)
            x, y = target_x, target_y
        pointer.pointer_up()
        actions.perform()


def clear(driver) -> None:
    before = answers(driver)
    driver.find_element("id", "clear").click()
    settled(driver, before)


@pytest.mark.parametrize("kind", ["mouse", "pen", "touch"])
def test_drawing_a_capital_l_shows_l_on_top_of_a_five_bar_chart(page, kind):
    driver, _ = page
    clear(driver)
    before = answers(driver)
    draw(driver, [[(-60, -100), (-60, 90), (70, 90)]], kind)
    settled(driver, before)
    assert driver.find_element("tag name", "body").get_attribute("data-pointer") == kind
    assert driver.find_element("id", "letter").text == "L"
    bars = chart(driver)
    assert len(bars) == 5 and bars[0][0] == "L"
    probabilities = [probability for _, probability in bars]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0001
    assert driver.find_element("id", "probability").text == f"{100 * bars[0][1]:.1f}%"
    width = driver.find_element("css selector", "#chart li .bar").value_of_css_property("width")
    track = driver.find_element("css selector", "#chart li .track").size["width"]
    assert float(width.removesuffix("px")) == pytest.approx(track * bars[0][1], abs=2)
    assert driver.find_element("id", "error").get_attribute("hidden")
    severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe  # no script error, nothing refused by the page's CSP


def test_undo_removes_the_last_stroke_and_clear_empties_the_page(page):
    driver, _ = page
    clear(driver)
    before = answers(driver)
    draw(driver, [[(-60, -100), (-60, 90)], [(-60, 90), (70, 90)]])
    settled(driver, before)
    with_foot = chart(driver)
    before = answers(driver)
    driver.find_element("id", "undo").click()
    settled(driver, before)
    assert chart(driver) != with_foot  # a lone upright stroke is not read like an L
    clear(driver)
    assert driver.find_element("id", "letter").text == "" and chart(driver) == []


def test_a_dot_gets_the_no_letter_warning(page):
    driver, _ = page
    clear(driver)
    before = answers(driver)
    draw(driver, [[(0, 0)]])
    settled(driver, before)
    warning = driver.find_element("id", "warning")
    assert warning.is_displayed() and warning.text.startswith("no letter found")


def test_a_chosen_file_is_read_as_the_api_reads_it(page, tmp_path):
    driver, reader = page
    clear(driver)
    path = tmp_path / "t.png"
    path.write_bytes(encoded(letter_image("T")))
    before = answers(driver)
    driver.find_element("id", "file").send_keys(str(path))
    settled(driver, before)
    expected = reader.read(path.read_bytes(), top_k=5, name="t.png")
    assert driver.find_element("id", "letter").text == expected["prediction"]
    assert chart(driver) == [(entry["letter"], entry["probability"])
                             for entry in expected["top_k"]]
