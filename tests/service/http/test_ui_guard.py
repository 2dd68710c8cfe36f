"""The playground at /ui behind the token guard, in-process (the browser's view of the same is in
tests/ui/test_playground.py): the page, its config and the API open to the bearer token or to the
login form's cookie, and to nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from service.http.ui import auth
from tests.service.support import DEFAULT, TOKEN


@pytest.fixture
def anonymous(app, client):
    """No token. `client` first: its lifespan loaded the models this app serves."""
    return TestClient(app, follow_redirects=False)


def sign_in(anonymous: TestClient, token: str):
    return anonymous.post("/ui/login", data={"token": token})


@pytest.mark.parametrize("path", ["/ui/", "/ui/config.json", "/ui/app.js"])
def test_without_a_token_the_page_sends_a_browser_to_the_form(anonymous, path):
    r = anonymous.get(path)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert "set-cookie" not in r.headers


def test_the_form_is_open_and_asks_for_the_token(anonymous):
    r = anonymous.get("/ui/login")
    assert r.status_code == 200 and 'name="token"' in r.text and "<script" not in r.text


@pytest.mark.parametrize("token", ["", "wrong", TOKEN + "x", TOKEN.upper()])
def test_a_wrong_token_is_refused_and_sets_no_cookie(anonymous, token):
    r = sign_in(anonymous, token)
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert 'id="login-error"' in r.text


def test_the_right_token_sets_a_session_cookie_that_opens_the_page_and_the_api(anonymous):
    r = sign_in(anonymous, TOKEN)
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie  # an HMAC of it
    jar = {auth.COOKIE: auth.session_value(TOKEN)}
    assert f"{auth.COOKIE}={jar[auth.COOKIE]}" in cookie
    with_cookie = TestClient(anonymous.app, follow_redirects=False, cookies=jar)
    page = with_cookie.get("/ui/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert with_cookie.get("/ui/config.json").json()["token_required"] is True
    assert with_cookie.get("/models").status_code == 200
    assert with_cookie.post("/sample", json={"n": 2, "seed": 1, "format": "npy"}).status_code == 200


@pytest.mark.parametrize("value", [auth.session_value("another-token"), "", "x" * 64, TOKEN])
def test_any_other_cookie_opens_nothing(anonymous, value):
    c = TestClient(anonymous.app, follow_redirects=False, cookies={auth.COOKIE: value})
    assert c.post("/sample", json={"n": 1}).status_code == 401
    assert c.get("/ui/").status_code == 303


def test_the_bearer_token_opens_the_page_too(client):
    r = client.get("/ui/", follow_redirects=False)
    assert r.status_code == 200 and '<script src="app.js">' in r.text


def test_config_says_which_request_fields_this_api_takes(client):
    config = client.get("/ui/config.json").json()
    assert {"model", "n", "seed", "scores", "min_realness", "drs"} <= set(config["sample_fields"])
    assert {"seeds", "steps", "method"} <= set(config["interpolate_fields"])
    assert set(config["data_modes"]) == {"ring8", "grid25", "toy1d"}
    assert client.get("/models").json()["default_model"] == DEFAULT


def test_the_page_names_only_files_of_its_own():
    """Nothing in the page's files points outside the server (the browser test checks the requests)."""
    static = Path(auth.__file__).with_name("static")
    assert {p.name for p in static.iterdir()} == {"index.html", "app.js", "plot.js", "style.css"}
    for path in static.iterdir():
        text = path.read_text()
        assert "http://" not in text.replace('"http://www.w3.org/2000/svg"', "") and "https://" not in text, path.name
        assert "@import" not in text and "//cdn" not in text, path.name
