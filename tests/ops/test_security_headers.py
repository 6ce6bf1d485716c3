"""Security headers on pages, API answers, exports, error pages and static files; no inline script to allow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from discharge_bridge.api.headers import CSP
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from tests.support.factories import api_client, flagged_case, make_source, user_client

SQLITE = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)  # headers do not depend on the database

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "discharge_bridge" / "ui" / "templates"
EVERYWHERE = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@SQLITE
def test_every_kind_of_answer_carries_the_headers(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
    anna = user_client(settings, engine, "anna")
    api = api_client(settings)
    answers = {
        "sign-in page": api_client(settings, token=None).get("/login"),
        "worklist page": anna.get("/worklist"),
        "case page": anna.get(f"/cases/{case.id}"),
        "error page": anna.get("/cases/999999"),
        "API": api.get("/api/v1/worklist"),
        "API error": api.get("/api/v1/cases/999999"),
        "CSV": api.get("/api/v1/access-log.csv"),
        "health": api.get("/healthz"),
    }
    assert {name: r.status_code for name, r in answers.items()} == {
        "sign-in page": 200,
        "worklist page": 200,
        "case page": 200,
        "error page": 404,
        "API": 200,
        "API error": 404,
        "CSV": 200,
        "health": 200,
    }
    for name, response in answers.items():
        headers = {k: response.headers.get(k) for k in (*EVERYWHERE, "cache-control", "content-security-policy")}
        assert headers == {**EVERYWHERE, "cache-control": "no-store", "content-security-policy": CSP}, name
    assert "frame-ancestors 'none'" in CSP and "script-src 'self';" in CSP and "unsafe" not in CSP


@SQLITE
def test_static_files_may_be_cached_and_the_docs_get_their_own_policy(engine: Engine, settings: Settings) -> None:
    api = api_client(settings)
    css = api.get("/static/style.css")
    assert css.status_code == 200 and css.headers["x-content-type-options"] == "nosniff"
    assert "cache-control" not in css.headers
    docs = api.get("/docs")
    assert docs.status_code == 200 and docs.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]  # where Swagger UI comes from


@SQLITE
def test_over_https_browsers_are_told_to_stay_on_https(engine: Engine, settings: Settings) -> None:
    secure = api_client(settings)
    secure.base_url = secure.base_url.copy_with(scheme="https")
    assert secure.get("/healthz").headers["strict-transport-security"] == "max-age=31536000"
    assert "strict-transport-security" not in api_client(settings).get("/healthz").headers


def test_no_template_holds_inline_script_the_policy_would_refuse() -> None:
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        for pattern in (r"<script(?![^>]*\bsrc=)[^>]*>", r"\son[a-z]+\s*=", r"javascript:", r"\sstyle\s*=", r"<style"):
            found += [f"{path.relative_to(TEMPLATES)}: {m.group(0).strip()}" for m in re.finditer(pattern, text)]
    assert found == []
