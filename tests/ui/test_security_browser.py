"""The pages work under the Content-Security-Policy in Debian's Chromium: no violation on the worklist,
a case page, the bed board, the IT page (with an htmx swap) and the audit page; the language switch,
once an inline handler, works from the static script."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.conftest import LiveServer, sign_in

pytestmark = pytest.mark.slow

# Violations as the page sees them (a securitypolicyviolation event), recorded by a script the
# browser runs before the page's own (Playwright injects it outside the policy).
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sourceFile || ""));
});
"""


def watch(page: Any) -> list[str]:
    """Console messages that report a refused script, style, frame or request."""
    refused: list[str] = []
    page.add_init_script(WATCH)
    page.on(
        "console",
        lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return refused


def violations(page: Any) -> list[str]:
    return list(page.evaluate("window.__violations || []"))


def test_the_pages_run_under_the_policy(live_server: LiveServer, page: Any) -> None:
    console = watch(page)
    sign_in(page, live_server, "admin")
    seen: dict[str, list[str]] = {}

    response = page.goto(f"{live_server.base_url}/worklist")
    assert "script-src 'self';" in response.headers.get("content-security-policy", "")  # the policy is on
    assert page.get_by_role("heading", level=1).is_visible()
    assert page.evaluate("typeof window.htmx") == "object"  # the scripts loaded
    seen["worklist"] = violations(page)

    case_link = page.locator("a[href^='/cases/']").first
    case_link.click()
    page.wait_for_url("**/cases/*")
    seen["case"] = violations(page)

    page.goto(f"{live_server.base_url}/board")
    seen["board"] = violations(page)

    page.goto(f"{live_server.base_url}/it")
    page.locator("#source-demo").get_by_role("button", name="Check connection").click()  # an htmx swap
    page.locator("#source-demo .check-items").wait_for()
    seen["it"] = violations(page)

    page.goto(f"{live_server.base_url}/audit")
    seen["audit"] = violations(page)
    assert seen == {"worklist": [], "case": [], "board": [], "it": [], "audit": []}
    assert console == []


def test_the_language_switch_works_without_an_inline_handler(live_server: LiveServer, page: Any) -> None:
    console = watch(page)
    sign_in(page, live_server, "boris")
    assert page.locator("select#language").get_attribute("onchange") is None
    # pages.js submits the form on change. It is a deferred script: waiting for the new page's
    # load event, not only its heading, keeps the second switch from racing the listener.
    with page.expect_navigation(wait_until="load"):
        page.locator("select#language").select_option("ru")
    page.get_by_role("heading", level=1, name="Коечный фонд").wait_for()
    with page.expect_navigation(wait_until="load"):
        page.locator("select#language").select_option("en")
    page.get_by_role("heading", level=1, name="Bed board").wait_for()
    assert violations(page) == [] and console == []
