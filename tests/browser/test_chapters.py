"""Each chapter page works as a reader uses it, offline: hidden solutions and emulator answers
open when asked for, and figures are drawn.

Runs on the built book (make html) with every network request aborted, like test_built_pages.
"""

from __future__ import annotations

import pytest

from tools import pagecheck
from tools.pagecheck import HTML, MAIN_CONTENT
from tools.toc import toc_files

CHAPTERS = [name for name in toc_files() if name.startswith("notebooks/")]
# Chapters that draw a matplotlib figure, and chapters with a hop stepper (netsim.views).
WITH_FIGURES = {"notebooks/11-scale"}
WITH_STEPPERS = {"notebooks/02-containers-in-a-pod", "notebooks/03-pod-to-pod-same-node", "notebooks/04-host-to-pod",
                 "notebooks/05-vxlan-across-nodes", "notebooks/06-backends", "notebooks/07-nodeport",
                 "notebooks/08-pod-to-outside", "notebooks/10-troubleshooting", "notebooks/12-other-backends",
                 "notebooks/13-pod-calls-a-service", "notebooks/14-pod-calls-itself", "notebooks/15-when-packets-die",
                 "notebooks/16-mtu", "notebooks/17-kube-proxy-modes", "notebooks/18-in-from-the-edge"}


def open_offline(browser, name):
    path = HTML / f"{name}.html"
    assert path.is_file(), f"{path} is missing: build the book first (make html)"
    context = browser.new_context()
    page = context.new_page()
    requests = []

    def route(route):
        if route.request.url.startswith(pagecheck.LOCAL_SCHEMES):
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function(pagecheck.READY)        # the page loaded and its steppers are ready
    return context, page, requests


def test_every_chapter_is_in_the_book():
    assert len(CHAPTERS) >= 11


@pytest.mark.parametrize("name", CHAPTERS)
def test_hidden_solutions_and_answers_open_on_click(browser, name):
    context, page, requests = open_offline(browser, name)
    try:
        hidden = page.locator(f"{MAIN_CONTENT} details")
        assert hidden.count() >= 1, "the chapter hides no solution or emulator answer"
        for i in range(hidden.count()):
            details = hidden.nth(i)
            body = details.locator(":scope > :not(summary)").first
            assert not body.is_visible(), f"hidden block {i} is visible before it is asked for"
            details.locator(":scope > summary").click()
            body.wait_for(state="visible", timeout=2000)
            assert len(body.inner_text().strip()) > 0, f"hidden block {i} opened empty"
        assert requests == []
    finally:
        context.close()


@pytest.mark.parametrize("name", sorted(WITH_FIGURES))
def test_figures_are_drawn(browser, name):
    context, page, requests = open_offline(browser, name)
    try:
        figures = page.locator(f"{MAIN_CONTENT} .cell_output img")
        assert figures.count() >= 1
        for i in range(figures.count()):
            img = figures.nth(i)
            assert img.is_visible()
            assert img.evaluate("el => el.complete && el.naturalWidth > 100")
        assert requests == []
    finally:
        context.close()


@pytest.mark.parametrize("name", sorted(WITH_STEPPERS))
def test_the_hop_stepper_steps_without_a_kernel(browser, name):
    context, page, requests = open_offline(browser, name)
    try:
        stepper = page.locator(f"{MAIN_CONTENT} .netsim-stepper").first
        assert stepper.is_visible()
        assert stepper.get_attribute("data-hop") == "0"
        position = stepper.locator(".pos").first
        before = position.inner_text()
        if stepper.locator(".panel .quiz").count():        # a question at the first hop: answer it
            stepper.locator(".panel .quiz .ch").first.click()
            stepper.locator(".panel .reveal").wait_for()
        stepper.locator('[data-a="next"]').click()
        assert stepper.get_attribute("data-hop") == "1"
        assert position.inner_text() != before
        stepper.locator('[data-a="prev"]').click()
        assert stepper.get_attribute("data-hop") == "0"
        assert requests == []
    finally:
        context.close()
