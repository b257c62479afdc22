"""The basis explorer page (/explorer): served with its files and a strict content security
policy, and used for real in a headless Chromium (Debian's ``chromium`` driven by Playwright)
against the real server process: the group list loads, a basis function is plotted (the values
are the service's, the canvas is drawn and not blank), and a pasted CIF is encoded."""

from __future__ import annotations

import io
import os
import shutil

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from basisdb import BasisStore
from basisdb.service.app import create_app
from basisdb.service.config import ServiceSettings

from .helpers import BASISDB_COMMAND, free_port, serve, stop, wait_until_healthy

# Rock salt in its conventional cell, written out atom by atom (P1): the page must find Fm-3m.
ROCK_SALT_CIF = """data_rocksalt
_cell_length_a 5.6402
_cell_length_b 5.6402
_cell_length_c 5.6402
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na1 Na 0 0 0
Na2 Na 0 0.5 0.5
Na3 Na 0.5 0 0.5
Na4 Na 0.5 0.5 0
Cl1 Cl 0.5 0.5 0.5
Cl2 Cl 0.5 0 0
Cl3 Cl 0 0.5 0
Cl4 Cl 0 0 0.5
"""

# Where the heat map lies on the canvas (CSS pixels; LAYOUT in service/static/explorer.js).
MAP_LEFT, MAP_TOP, MAP_SIDE = 58, 34, 420


# --- without a browser ------------------------------------------------------------------------


def _client(store, **settings) -> TestClient:
    """A client without the app's lifespan (no worker processes: these tests need none); the
    store opens on first use."""
    return TestClient(create_app(ServiceSettings(store=store, **settings)))


@pytest.fixture(scope="module")
def client(small_store):
    test_client = _client(small_store)
    yield test_client
    test_client.app.state.service.close()


def test_the_page_and_its_files_are_served_with_a_strict_policy(client):
    page = client.get("/explorer")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<canvas" in page.text and "static/explorer.js" in page.text and "http" not in page.text.split("<body>")[0]
    for name, kind in [("explorer.js", "javascript"), ("explorer.css", "text/css")]:
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"], name
    script = client.get("/static/explorer.js").text
    assert "http://" not in script and "https://" not in script  # nothing from elsewhere
    assert client.get("/static/../config.py").status_code == 404
    assert client.get("/static/nothing.js").status_code == 404


def test_the_page_is_not_part_of_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert all(path.startswith("/v1/") for path in paths)


def test_the_page_can_be_turned_off(small_store):
    quiet = _client(small_store, explorer=False)
    assert quiet.get("/explorer").status_code == 404
    assert quiet.get("/static/explorer.js").status_code == 404
    assert quiet.get("/v1/health").status_code == 200
    quiet.app.state.service.close()


# --- in a real browser ------------------------------------------------------------------------


def _chromium() -> str | None:
    return os.environ.get("BASISDB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    executable = _chromium()
    if executable is None:
        pytest.skip("no chromium executable (Debian: apt-get install chromium; or set BASISDB_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium refuses its sandbox as root, which containers and CI often are.
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(small_store):
    port = free_port()
    process = serve([BASISDB_COMMAND, "serve", "--store", str(small_store), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield url
    finally:
        stop(process)


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    opened = context.new_page()
    problems = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("console", lambda message: message.type == "error" and problems.append(message.text))
    opened.problems = problems
    opened.goto(f"{server}/explorer")
    opened.wait_for_selector("#group-table[data-loaded=true]", timeout=30_000)
    yield opened
    context.close()


def _wait(page, predicate: str, timeout: float = 30_000):
    """Wait for a JavaScript predicate: as a function, which the page's policy (no eval) allows."""
    page.wait_for_function(f"() => {predicate}", timeout=timeout)


@pytest.mark.slow  # browser
def test_the_groups_are_listed_with_their_basis_sizes(page, small_store):
    rows = page.locator("#group-list tr")
    assert rows.count() == 230
    headers = page.locator("#group-head th").all_inner_texts()
    assert headers[-3:] == ["r=2", "r=3", "r=4"]
    with BasisStore.open(small_store) as store:
        sizes = [int(row["n_basis"]) for row in store.verification_table(227)]
    cells = page.locator("#group-list tr[data-group='227'] td").all_inner_texts()
    assert cells[:2] == ["227", "Fd-3m"] and [int(c) for c in cells[-3:]] == sizes
    page.fill("#group-filter", "hexagonal")
    assert 20 < page.locator("#group-list tr:visible").count() < 40
    page.fill("#group-filter", "225")
    assert page.locator("#group-list tr:visible").all_inner_texts()[0].split()[:2] == ["225", "Fm-3m"]
    assert page.problems == []


@pytest.mark.slow  # browser
def test_a_basis_function_is_plotted_from_the_services_values(page, small_store, tmp_path):
    page.fill("#group-filter", "Fd-3m")
    page.click("#group-list tr[data-group='227']")
    page.wait_for_selector("#setting-line:has-text('227 Fd-3m')")
    page.select_option("#radius", "4")
    page.fill("#function", "1")
    page.dispatch_event("#function", "change")
    _wait(page, "window.basisExplorer.lastPlot && window.basisExplorer.lastPlot.index === 1")
    page.wait_for_selector("#plot-canvas[data-state=drawn]")

    plotted = page.evaluate("() => window.basisExplorer.lastPlot")
    assert plotted["group"] == 227 and plotted["size"] == 64 and plotted["axis"] == 2 and plotted["level"] == 0
    positions = np.asarray(plotted["positions"])
    assert positions.shape == (64 * 64, 3) and np.all(positions[:, 2] == 0)
    with BasisStore.open(small_store) as store:
        expected = store.basis(227, radius=4).encode(positions, real=True)[:, 1]
    assert np.allclose(plotted["values"], expected, atol=1e-12)  # the service's values, as they are

    from PIL import Image

    shot = page.locator("#plot-canvas").screenshot(path=str(tmp_path / "plot.png"))
    image = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=float)
    heat_map = image[MAP_TOP + 2 : MAP_TOP + MAP_SIDE - 2, MAP_LEFT + 2 : MAP_LEFT + MAP_SIDE - 2]
    colours = {tuple(pixel) for pixel in heat_map.reshape(-1, 3)}
    assert len(colours) > 100, f"{len(colours)} colours: is the plot blank? see {tmp_path / 'plot.png'}"
    assert heat_map.std() > 20
    red, blue = heat_map[..., 0] - heat_map[..., 2], heat_map[..., 2] - heat_map[..., 0]
    assert (red > 80).mean() > 0.02 and (blue > 40).mean() > 0.02  # both signs, as the values have
    whole = image.reshape(-1, 3)
    assert len({tuple(pixel) for pixel in whole}) > len(colours)  # axes, labels and colour bar too
    assert page.problems == []


@pytest.mark.slow  # browser
def test_a_pasted_cif_is_encoded(page, server):
    page.fill("#cif-text", ROCK_SALT_CIF)
    page.select_option("#cif-radius", "4")
    page.click("#cif-encode")
    page.wait_for_selector("#cif-result:not([hidden])", timeout=60_000)
    assert page.get_attribute("#cif-group", "data-group") == "225"
    assert page.inner_text("#cif-group").startswith("225 Fm-3m")
    rows = page.locator("#atom-table tbody tr")
    assert rows.count() == 8
    elements = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(8)]
    assert elements == ["Na"] * 4 + ["Cl"] * 4

    answer = httpx.post(
        f"{server}/v1/encode/structure", json={"cif": ROCK_SALT_CIF, "radius": 4, "real": True}, timeout=60
    ).json()
    first = rows.nth(0).locator("td").all_inner_texts()[5 : 5 + answer["n_basis"]]
    assert np.allclose([float(text) for text in first], answer["encodings"]["real"][0], rtol=1e-3, atol=1e-12)
    assert page.problems == []


@pytest.mark.slow  # browser
def test_a_broken_cif_shows_the_services_message(page):
    page.fill("#cif-text", "this is not a CIF")
    page.click("#cif-encode")
    page.wait_for_selector("#cif-status.error")
    assert "cannot parse CIF" in page.inner_text("#cif-status")
    assert page.locator("#cif-result").is_hidden()


# --- the API documentation pages, offline -----------------------------------------------------


def test_the_docs_pages_load_nothing_from_elsewhere(client):
    for url, script in [("/docs", "/docs-assets/swagger-ui-bundle.js"), ("/redoc", "/docs-assets/redoc.standalone.js")]:
        page = client.get(url)
        assert page.status_code == 200 and "http://" not in page.text and "https://" not in page.text, url
        assert f'src="{script}"' in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        asset = client.get(script)
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
        assert len(asset.content) > 500_000  # the whole bundle, not a loader that fetches it
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert not any(path.startswith(("/docs", "/redoc")) for path in client.get("/openapi.json").json()["paths"])


@pytest.fixture
def offline_page(browser, server):
    """A page whose every request to another host is refused, as on a machine without
    internet; the refused addresses are kept in ``page.refused``."""
    context = browser.new_context(viewport={"width": 1300, "height": 900}, device_scale_factor=1)
    refused: list[str] = []

    def only_the_service(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_the_service)
    opened = context.new_page()
    opened.refused = refused
    yield opened
    context.close()


@pytest.mark.slow  # browser
def test_swagger_ui_renders_with_the_network_blocked(offline_page, server, tmp_path):
    offline_page.goto(f"{server}/docs")
    offline_page.wait_for_selector(".swagger-ui .information-container .title", timeout=30_000)
    assert offline_page.inner_text(".swagger-ui .information-container .title").startswith("basisdb service")
    offline_page.wait_for_selector(".opblock-summary-path")
    paths = offline_page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/groups/{group}" in [path.replace("\u200b", "") for path in paths] and len(paths) >= 6
    offline_page.screenshot(path=str(tmp_path / "docs.png"))  # kept for a reader of a failure
    assert offline_page.refused == []


@pytest.mark.slow  # browser
def test_redoc_renders_with_the_network_blocked(offline_page, server):
    offline_page.goto(f"{server}/redoc")
    offline_page.wait_for_selector(".api-info h1", timeout=30_000)
    assert offline_page.inner_text(".api-info h1").startswith("basisdb service")
    assert offline_page.locator("[role=menuitem]").count() >= 6  # one entry per operation, at least
    assert offline_page.refused == []
