"""The playground at /ui in a real browser: Debian's Chromium driven by Playwright, against a real
`bentoml serve` behind a token.

What a person does there is done here through the page (seed, new seed, model, class, realness,
walk, upload, downloads), and every picture the page shows is checked pixel for pixel against what
the API itself answers for the same request. The page never shows an error, the console stays
clean, and every request the page makes goes to the server's own origin.

UPDATE_SCREENSHOT=1 also writes the page's screenshot to docs/images/playground.png (the README's).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.model_extras import add_directions, add_tiny_encoder
from tests.servers import REPO, running, server_env
from tests.service.model_factory import make_model
from tests.style_factory import pack_into

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "playground-token-7"
SCREENSHOT = REPO / "docs" / "images" / "playground.png"


def _need_browser():
    """The browser test runs wherever .ci/run ran (it installs both); elsewhere it says what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package"
    else:
        missing = None if CHROMIUM.exists() else f"{CHROMIUM} (Debian's chromium)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install {missing} (.ci/run)")
        pytest.skip(f"needs {missing}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _need_browser()
    root = tmp_path_factory.mktemp("playground")
    models = root / "models"
    for name in ("mnist", "ring8", "toy1d"):  # the shipped models: an image one and two vector ones
        shutil.copytree(REPO / "models" / name, models / name)
    make_model(models, "cond", classes=3, seed=1)  # conditional, 1x8x8
    make_model(models, "gonly", discriminator=False, seed=2)  # generator only, 1x8x8
    pack_into(models, "style", root / "style-graphs")  # style-based, conditional, 3x8x8 (tests/style_factory.py)
    add_tiny_encoder(models / "style")  # /invert ...
    add_directions(models / "style")  # ... and /sample's edit
    env = server_env(
        {
            "GANSERVE_MODELS_DIR": str(models),
            "GANSERVE_DEVICE": "cpu",
            "GANSERVE_BACKEND": "onnxruntime",
            "GANSERVE_WORKERS": "1",
            "GANSERVE_API_TOKEN": TOKEN,
            "GANSERVE_DEFAULT_MODEL": "mnist",
            "BENTOML_HOME": str(root / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
        }
    )
    with running("playground", env, root, command="bentoml") as srv:
        yield srv


@pytest.fixture(scope="module")
def api(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


class Watched:
    """A browser context whose every request, console error and page error is recorded."""

    def __init__(self, browser, origin: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        self.origin = origin
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page = self.context.new_page()
        self.page.on(
            "console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def foreign_requests(self) -> list[str]:
        own = urlsplit(self.origin)
        out = []
        for url in self.requests:
            parts = urlsplit(url[len("blob:") :] if url.startswith("blob:") else url)
            if url.startswith("data:"):
                continue
            if (parts.scheme, parts.netloc) != (own.scheme, own.netloc):
                out.append(url)
        return out


def sign_in(page, url: str, token: str) -> None:
    page.goto(f"{url}/ui/")
    page.fill("#token", token)
    page.click("#sign-in")


def renders(page) -> int:
    return int(page.evaluate("document.body.dataset.renders"))


def settled(page, before: int) -> None:
    """Until the page finished a render after `before`; then it must show no error."""
    page.wait_for_function(
        "n => Number(document.body.dataset.renders) > n && document.body.dataset.state === 'ready'",
        arg=before,
        timeout=30_000,
    )
    assert page.is_hidden("#error"), f"the page shows an error: {page.inner_text('#error')}"


def act(page, action) -> None:
    before = renders(page)
    action()
    settled(page, before)


PIXELS_JS = """sel => {
  const img = document.querySelector(sel);
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  return {w: c.width, h: c.height, data: Array.from(ctx.getImageData(0, 0, c.width, c.height).data)};
}"""


def shown(page, selector: str) -> np.ndarray:
    """The RGBA pixels of an <img> as the browser decoded them, (H, W, 4) uint8."""
    got = page.evaluate(PIXELS_JS, selector)
    return np.array(got["data"], np.uint8).reshape(got["h"], got["w"], 4)


def answered(api, path: str, body: dict) -> np.ndarray:
    response = api.post(path, json=body)
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))


def assert_same_pixels(page, selector: str, api, path: str, body: dict) -> np.ndarray:
    got, want = shown(page, selector), answered(api, path, body)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.array_equal(got, want), (
        f"{selector} differs from {path} {body} in {int((got != want).any(-1).sum())} pixels"
    )
    return got


def test_the_page_is_behind_the_token(server, browser):
    w = Watched(browser, server.url)
    page = w.page
    # No token: the page and its configuration send the browser to the form; the API refuses.
    page.goto(f"{server.url}/ui/")
    assert urlsplit(page.url).path == "/ui/login"
    assert page.is_visible("#token")
    raw = httpx.get(f"{server.url}/ui/config.json", follow_redirects=False)
    assert raw.status_code == 303 and raw.headers["location"] == "/ui/login"
    assert httpx.post(f"{server.url}/sample", json={"n": 1}).status_code == 401
    # A wrong token is refused and sets no cookie.
    sign_in(page, server.url, "not-the-token")
    assert page.inner_text("#login-error") == "Wrong token."
    assert w.context.cookies() == []
    # The right one: the page loads and works; the cookie is HttpOnly, SameSite=Strict, and is not the token.
    before = 0
    sign_in(page, server.url, TOKEN)
    settled(page, before)
    assert urlsplit(page.url).path == "/ui/"
    (cookie,) = w.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
    # The cookie is the token for the API too (the page's own requests), and only this server's.
    jar = {cookie["name"]: cookie["value"]}
    assert httpx.post(f"{server.url}/sample", json={"n": 1}, cookies=jar).status_code == 200
    forged = {cookie["name"]: "0" * len(cookie["value"])}
    assert httpx.post(f"{server.url}/sample", json={"n": 1}, cookies=forged).status_code == 401
    # The one problem the browser reports is the wrong token's answer (the form, with status 401).
    assert w.problems == [
        "console error: Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    assert w.foreign_requests() == []
    w.context.close()


def test_a_person_explores_every_model_and_feature(server, browser, api, tmp_path):
    w = Watched(browser, server.url)
    page = w.page
    sign_in(page, server.url, TOKEN)
    settled(page, 0)

    # The default model's grid is what /sample answers for the controls' request.
    assert page.input_value("#model") == "mnist"
    assert "mnist5k" in page.inner_text("#card")
    first = assert_same_pixels(page, "#grid", api, "/sample", {"model": "mnist", "n": 16, "seed": 42, "format": "png"})

    # A new seed: new digits, still the API's.
    act(page, lambda: page.fill("#seed", "7"))
    seven = assert_same_pixels(page, "#grid", api, "/sample", {"model": "mnist", "n": 16, "seed": 7, "format": "png"})
    assert not np.array_equal(first, seven)
    act(page, lambda: page.click("#new-seed"))
    drawn = int(page.input_value("#seed"))
    assert drawn != 7
    assert_same_pixels(page, "#grid", api, "/sample", {"model": "mnist", "n": 16, "seed": drawn, "format": "png"})

    # n and truncation.
    act(page, lambda: page.fill("#n", "9"))
    act(page, lambda: page.check("#truncate"))
    assert_same_pixels(
        page, "#grid", api, "/sample", {"model": "mnist", "n": 9, "seed": drawn, "truncation": 1.5, "format": "png"}
    )
    act(page, lambda: page.uncheck("#truncate"))
    act(page, lambda: page.fill("#seed", "42"))
    act(page, lambda: page.fill("#n", "16"))

    # D's realness on each sample: the API's scores, in tile order.
    act(page, lambda: page.check("#scores"))
    want = api.post("/sample", json={"model": "mnist", "n": 16, "seed": 42, "format": "json", "scores": True}).json()[
        "realness"
    ]
    tags = page.locator("#overlay .realness").all_inner_texts()
    assert tags == [f"{r:.2f}" for r in want]

    # Rejection by D: the grid is the API's filtered grid, and the page says how many draws it took.
    act(page, lambda: page.check("#use-min"))
    filtered = {"model": "mnist", "n": 16, "seed": 42, "format": "png", "min_realness": 0.5}
    assert_same_pixels(page, "#grid", api, "/sample", filtered)
    drawn_header = api.post("/sample", json=filtered).headers["X-Drawn"]
    assert f"from {drawn_header} draws" in page.inner_text("#draws")
    act(page, lambda: page.uncheck("#use-min"))
    act(page, lambda: page.check("#drs"))
    drs = {"model": "mnist", "n": 16, "seed": 42, "format": "png", "drs": True}
    assert_same_pixels(page, "#grid", api, "/sample", drs)
    assert f"from {api.post('/sample', json=drs).headers['X-Drawn']} draws" in page.inner_text("#draws")
    act(page, lambda: page.uncheck("#drs"))

    # The equivalent curl command and the downloads are the same request.
    assert '"model":"mnist","n":16,"seed":42,"format":"png"' in page.input_value("#curl")
    page.click("#copy-curl")
    # A function, not a bare expression: Playwright evaluates an expression with eval, which the
    # page's Content-Security-Policy (script-src 'self') rightly refuses.
    page.wait_for_function("() => document.getElementById('copied').textContent === 'copied'")
    with page.expect_download() as download:
        page.click("#dl-npy")
    npy = np.load(download.value.path())
    want_npy = np.load(
        io.BytesIO(api.post("/sample", json={"model": "mnist", "n": 16, "seed": 42, "format": "npy"}).content)
    )
    assert np.array_equal(npy, want_npy)
    with page.expect_download() as download:
        page.click("#dl-json")
    assert json.loads(Path(download.value.path()).read_text())["realness"] == pytest.approx(want)

    # A walk between two seeds: the API's strip, and its animation.
    act(page, lambda: page.click("#walk-go"))
    assert_same_pixels(
        page,
        "#strip",
        api,
        "/interpolate",
        {"model": "mnist", "seeds": [1, 2], "steps": 10, "method": "slerp", "format": "png", "nrow": 10},
    )
    assert page.is_visible("#anim")

    # Upload two PNGs: D's realness of each, as POST /score answers it.
    digits = np.load(
        io.BytesIO(api.post("/sample", json={"model": "mnist", "n": 2, "seed": 5, "format": "npy"}).content)
    )
    files = []
    for i, digit in enumerate(digits):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(np.rint(digit[0] * 255).astype(np.uint8), mode="L").save(path)
        files.append(path)
    act(page, lambda: page.set_input_files("#upload", [str(f) for f in files]))
    scored = api.post(
        "/score?model=mnist", files=[("file", (f.name, f.read_bytes(), "image/png")) for f in files]
    ).json()
    shown_scores = [
        float(s) for s in page.locator("#score-list .score").evaluate_all("els => els.map(e => e.dataset.realness)")
    ]
    assert shown_scores == pytest.approx(scored["realness"], abs=1e-6)
    page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    # A vector model: a scatter of the API's samples over the data's 8 modes, coloured by realness.
    act(page, lambda: page.select_option("#model", "ring8"))
    assert page.is_visible("#plot") and page.is_hidden("#grid-wrap") and page.is_hidden("#walk-plot")
    assert page.locator("#plot circle.data-mode").count() == 8
    assert page.locator("#plot circle.sample").count() == 16
    colours = set(page.locator("#plot circle.sample").evaluate_all("els => els.map(e => e.getAttribute('fill'))"))
    assert all(c.startswith("hsl(") for c in colours)
    assert page.is_hidden("#score-section")  # PNG uploads are for image models
    act(page, lambda: page.click("#walk-go"))
    assert page.locator("#walk-plot circle.sample").count() == 10
    want = api.post("/sample", json={"model": "ring8", "n": 16, "seed": 42, "format": "json", "scores": True}).json()
    fills = page.locator("#plot circle.sample").evaluate_all("els => els.map(e => e.getAttribute('fill'))")
    assert fills == [
        f"hsl({math.floor(120 * min(1, max(0, r)) + 0.5)}, 75%, 38%)" for r in want["realness"]
    ]  # JS Math.round
    # 1-D: the samples along the data's density N(1, 1).
    act(page, lambda: page.select_option("#model", "toy1d"))
    assert page.locator("#plot path.data-density").count() == 1
    heights = page.locator("#plot rect.histogram").evaluate_all("els => els.map(e => Number(e.getAttribute('height')))")
    assert heights and all(h > 0 for h in heights)
    assert page.locator("#plot circle.sample").count() == 16

    # A generator-only model: its grid, and no realness controls at all.
    act(page, lambda: page.select_option("#model", "gonly"))
    assert page.is_hidden("#realness-controls") and page.is_visible("#no-d-note") and page.is_hidden("#score-section")
    assert_same_pixels(page, "#grid", api, "/sample", {"model": "gonly", "n": 16, "seed": 42, "format": "png"})

    # A conditional model: a class picker where the API takes a class (issue 13), as the server says.
    # (Asked of the server, not imported: service.core.schemas read at collection would fix the settings
    # of the in-process tests under tests/service before their fixtures set them.)
    config = api.get("/ui/config.json").json()
    if "labels" in config["sample_fields"]:
        act(page, lambda: page.select_option("#model", "cond"))
        assert page.is_visible("#label-row")
        zero = assert_same_pixels(
            page, "#grid", api, "/sample", {"model": "cond", "n": 16, "seed": 42, "format": "png", "labels": 0}
        )
        act(page, lambda: page.select_option("#label", "2"))
        two = assert_same_pixels(
            page, "#grid", api, "/sample", {"model": "cond", "n": 16, "seed": 42, "format": "png", "labels": 2}
        )
        assert not np.array_equal(zero, two)
        if "labels" in config["interpolate_fields"]:  # a walk within the picked class
            act(page, lambda: page.click("#walk-go"))
            assert_same_pixels(
                page,
                "#strip",
                api,
                "/interpolate",
                {
                    "model": "cond",
                    "seeds": [1, 2],
                    "steps": 10,
                    "method": "slerp",
                    "format": "png",
                    "nrow": 10,
                    "labels": 2,
                },
            )
        # An upload is scored as the picked class: D(x | c).
        tile = tmp_path / "tile.png"
        Image.fromarray(two[2:10, 2:10, 0]).save(tile)
        act(page, lambda: page.set_input_files("#upload", str(tile)))
        want = api.post(
            "/score?model=cond&labels=2", files=[("file", ("tile.png", tile.read_bytes(), "image/png"))]
        ).json()
        shown_score = float(page.locator("#score-list .score").first.get_attribute("data-realness"))
        assert shown_score == pytest.approx(want["realness"][0], abs=1e-6)
    else:
        page.select_option("#model", "cond")
        assert page.is_hidden("#label-row") and page.is_visible("#label-note")

    assert w.problems == [], w.problems
    assert w.foreign_requests() == [], w.foreign_requests()
    assert any(u.endswith("/sample") for u in w.requests) and any(u.endswith("/score?model=mnist") for u in w.requests)
    w.context.close()


def test_a_style_based_model_gets_a_psi_slider_and_a_mixing_grid(server, browser, api):
    w = Watched(browser, server.url)
    page = w.page
    sign_in(page, server.url, TOKEN)
    settled(page, 0)
    act(page, lambda: page.select_option("#model", "style"))
    assert page.is_visible("#psi-row") and page.is_hidden("#z-truncation-row") and page.is_visible("#mixing")
    assert "w_dim 16, 3 layers" in page.inner_text("#card")
    base = {"model": "style", "n": 16, "seed": 42, "labels": 0, "format": "png"}
    plain = assert_same_pixels(page, "#grid", api, "/sample", base)

    # psi 0: every tile is w_avg's image; the grid is the API's for truncation_psi 0.
    act(page, lambda: page.fill("#psi", "0"))
    assert page.inner_text("#psi-value") == "0.00"
    flat = assert_same_pixels(page, "#grid", api, "/sample", base | {"truncation_psi": 0.0})
    tiles = [flat[2 + r * 10 : 10 + r * 10, 2 + c * 10 : 10 + c * 10] for r in range(4) for c in range(4)]
    assert all(np.array_equal(t, tiles[0]) for t in tiles) and not np.array_equal(plain, flat)
    act(page, lambda: page.fill("#psi", "1"))

    # The mixing grid: 2 rows x 3 columns of mixes, each tile the API's answer for its cell.
    page.fill("#mix-rows", "1,2")
    page.fill("#mix-cols", "4,5,6")
    page.fill("#mix-layer", "1")
    act(page, lambda: page.click("#mix-go"))
    bodies = page.eval_on_selector_all("#mix-grid img.mix-tile", "els => els.map(e => e.dataset.body)")
    assert len(bodies) == 3 + 2 * 4  # the column seeds, then per row: its seed and its 3 mixes
    for i, body in enumerate(bodies):
        # CSS for the page's own querySelector: the hidden corner is the grid's first <img>
        assert_same_pixels(page, f"#mix-grid img:nth-of-type({i + 2})", api, "/sample", json.loads(body))
    cell = json.loads(bodies[4])
    assert cell == {
        "model": "style",
        "n": 1,
        "format": "png",
        "labels": 0,
        "seed": 1,
        "mix": {"seed": 4, "from_layer": 1},
    }
    assert w.problems == [] and w.foreign_requests() == []
    w.context.close()


def test_a_person_edits_along_a_direction_and_inverts_an_image(server, browser, api, tmp_path):
    w = Watched(browser, server.url)
    page = w.page
    sign_in(page, server.url, TOKEN)
    settled(page, 0)
    act(page, lambda: page.select_option("#model", "style"))
    assert page.is_visible("#edit-row") and page.is_visible("#invert-section")
    assert page.eval_on_selector_all("#direction option", "els => els.map(e => e.value)") == [
        "pc0",
        "pc1",
        "pc2",
        "pc3",
    ]
    base = {"model": "style", "n": 16, "seed": 42, "labels": 0, "format": "png"}
    act(page, lambda: page.select_option("#direction", "pc1"))
    act(page, lambda: page.fill("#amount", "2.5"))
    assert page.inner_text("#amount-value") == "2.5"
    edited = assert_same_pixels(page, "#grid", api, "/sample", base | {"edit": [{"direction": "pc1", "amount": 2.5}]})
    assert not np.array_equal(edited, answered(api, "/sample", base))

    # Invert an image of G's own: the reconstruction shown is /invert's answer for the same upload.
    x = np.asarray(api.post("/sample", json={"model": "style", "n": 1, "seed": 3, "labels": 0}).json()["samples"][0])
    png = tmp_path / "mine.png"
    Image.fromarray(np.clip((x.transpose(1, 2, 0) + 1) * 127.5, 0, 255).round().astype(np.uint8)).save(png)
    act(page, lambda: page.set_input_files("#invert-upload", str(png)))
    query = page.get_attribute("#invert-recon", "data-query")
    assert query == "model=style&format=png&refine=32&resize=true&labels=0"
    want = api.post(f"/invert?{query}", files=[("file", ("mine.png", png.read_bytes(), "image/png"))])
    assert want.status_code == 200, want.text
    got = shown(page, "#invert-recon")
    assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(want.content)).convert("RGBA")))
    assert "mean squared error" in page.inner_text("#invert-note") and "resized" not in page.inner_text("#invert-note")
    # A photo of another size: the server resizes it, and the page says what was resized.
    big = tmp_path / "big.png"
    with Image.open(png) as im:
        im.resize((im.width * 3, im.height * 2)).save(big)
        size = f"{im.width * 3}x{im.height * 2} -> {im.width}x{im.height}"
    act(page, lambda: page.set_input_files("#invert-upload", str(big)))
    assert f"resized {size} (Lanczos)" in page.inner_text("#invert-note")
    assert w.problems == [] and w.foreign_requests() == []
    w.context.close()
