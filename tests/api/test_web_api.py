"""GET / and its files: served by the service itself, nothing from anywhere else."""

from __future__ import annotations

import re

from app.http.routes.web import WEB_DIR


def test_the_page_is_served_with_its_languages_and_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<option value="de">German</option>' in page.text and '<option value="en">English</option>' in page.text
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200
    assert "/static/app.js" in page.text


def test_the_page_loads_nothing_from_other_hosts():
    for path in WEB_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), f"{path.name} loads from another host"
        assert not re.search(r"(fetch|open)\(\s*[\"'`]https?://", text), f"{path.name} calls another host"
        assert "@import" not in text


def test_the_page_needs_no_key_even_when_the_api_does(make_client):
    client = make_client(api_keys="k" * 32)
    assert client.get("/").status_code == 200
    assert client.post("/v1/jobs").status_code == 401
