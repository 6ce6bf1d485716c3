"""Signing in and out in a real browser; the session cookie's flags; a wrong password."""

from __future__ import annotations

from tests.ui.conftest import LiveServer, sign_in


def test_sign_in_lands_on_the_role_page_and_sign_out_ends_it(live_server: LiveServer, page: object) -> None:
    page.goto(f"{live_server.base_url}/board")  # type: ignore[attr-defined]
    assert "/login?next=/board" in page.url  # type: ignore[attr-defined]
    sign_in(page, live_server, "boris")
    assert page.url.endswith("/board")  # type: ignore[attr-defined]  # back where the link pointed
    cookies = {c["name"]: c for c in page.context.cookies()}  # type: ignore[attr-defined]
    session = cookies["discharge_bridge_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    page.get_by_role("button", name="Sign out").click()  # type: ignore[attr-defined]
    page.wait_for_url("**/login")  # type: ignore[attr-defined]
    page.goto(f"{live_server.base_url}/board")  # type: ignore[attr-defined]
    assert "/login" in page.url  # type: ignore[attr-defined]


def test_a_wrong_password_says_so_and_signs_nobody_in(live_server: LiveServer, page: object) -> None:
    sign_in(page, live_server, "anna", "not the password")
    assert page.get_by_role("alert").inner_text().startswith("Wrong user name or password")  # type: ignore[attr-defined]
    assert "discharge_bridge_session" not in {c["name"] for c in page.context.cookies()}  # type: ignore[attr-defined]


def test_the_sign_in_page_speaks_russian(live_server: LiveServer, page: object) -> None:
    page.goto(f"{live_server.base_url}/login?lang=ru")  # type: ignore[attr-defined]
    assert page.get_by_role("heading").inner_text() == "Вход"  # type: ignore[attr-defined]
    assert page.locator("html").get_attribute("lang") == "ru"  # type: ignore[attr-defined]
