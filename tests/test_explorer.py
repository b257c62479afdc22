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
    assert len(colours) > 60, f"{len(colours)} colours: is the plot blank? see {tmp_path / 'plot.png'}"
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


# --- the slice in the cell's real geometry ------------------------------------------------------

# Magnesium, hexagonal close packed (P6_3/mmc), written out in P1: its standardized cell is the
# one the page must draw, a 120-degree rhombus, with the atom at z = 1/4 on the slice z = 1/4.
HCP_MAGNESIUM_CIF = """data_Mg
_cell_length_a 3.2094
_cell_length_b 3.2094
_cell_length_c 5.2108
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 120
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
Mg1 Mg 0.333333 0.666667 0.25
Mg2 Mg 0.666667 0.333333 0.75
"""

MAGNESIUM_COLOUR = (138, 255, 0)  # #8aff00, ELEMENT_COLOURS in explorer.js


def _plot(page, group: int, *, radius: int = 4, function: int = 1, axis: int = 2, level: float = 0.0):
    """Select a group from its row, set the controls and wait until that plot is drawn."""
    page.click(f"#group-list tr[data-group='{group}']")
    page.wait_for_selector(f"#setting-line:has-text('{group} ')")
    page.select_option("#radius", str(radius))
    page.select_option("#slice-axis", str(axis))
    page.fill("#slice-value", str(level))
    page.fill("#function", str(function))
    page.dispatch_event("#function", "change")
    _wait(
        page,
        f"window.basisExplorer.lastPlot && window.basisExplorer.lastPlot.group === {group} && "
        f"window.basisExplorer.lastPlot.index === {function} && window.basisExplorer.lastPlot.axis === {axis} && "
        f"window.basisExplorer.lastPlot.level === {level}",
    )
    page.wait_for_selector("#plot-canvas[data-state=drawn]")
    return page.evaluate("() => window.basisExplorer.lastPlot")


def _screenshot(page, path) -> np.ndarray:
    from PIL import Image

    shot = page.locator("#plot-canvas").screenshot(path=str(path))
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=int)


def _at(corners, s: float, t: float) -> tuple[int, int]:
    """The canvas pixel (row, column) of the point (s, t) of the drawn cell face."""
    origin, a_end, _, b_end = (np.asarray(corner, dtype=float) for corner in corners)
    x, y = origin + s * (a_end - origin) + t * (b_end - origin)
    return int(round(y)), int(round(x))


def _check_face_is_drawn_as_placed(image, plotted, shot):
    """Inside the face every pixel is a colour of the map (never the canvas's pure white);
    just outside its right edge the canvas is blank: the picture has the face's shape."""
    corners = plotted["corners"]
    inside = [image[_at(corners, s, t)] for s in np.linspace(0.06, 0.94, 12) for t in np.linspace(0.06, 0.94, 12)]
    assert all(tuple(pixel) != (255, 255, 255) for pixel in inside), f"a blank pixel inside the face: see {shot}"
    outside = [image[_at(corners, 1.06, t)] for t in np.linspace(0.1, 0.9, 9)]
    assert all(tuple(pixel) == (255, 255, 255) for pixel in outside), f"the map spills out of the face: see {shot}"


def _edge_angle(plotted) -> float:
    origin, a_end, _, b_end = (np.asarray(corner, dtype=float) for corner in plotted["corners"])
    a, b = a_end - origin, b_end - origin
    return float(np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b))))


@pytest.mark.slow  # browser
def test_a_cubic_slice_is_a_square_with_round_colour_bar_ticks(page, tmp_path):
    plotted = _plot(page, 227)
    image = _screenshot(page, tmp_path / "cubic.png")
    assert plotted["cell"] == "cubic" and _edge_angle(plotted) == pytest.approx(90, abs=1e-9)
    origin, a_end, _, b_end = np.asarray(plotted["corners"])
    assert np.allclose([a_end - origin, b_end - origin], [[MAP_SIDE, 0], [0, -MAP_SIDE]])
    _check_face_is_drawn_as_placed(image, plotted, tmp_path / "cubic.png")
    bound = max(abs(value) for value in plotted["values"])
    ticks, end = np.asarray(plotted["ticks"]), plotted["scale"]
    assert bound <= end < 2 * bound and ticks[0] == -end and ticks[-1] == end and 0 in ticks
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** np.floor(np.log10(step))
    assert np.isclose(mantissa, [1, 2, 2.5, 5]).any() and np.allclose(np.diff(ticks), step), ticks
    assert np.allclose(ticks / step, np.round(ticks / step))  # multiples of a round step
    assert page.problems == []


@pytest.mark.slow  # browser
def test_a_hexagonal_slice_is_a_120_degree_rhombus_with_the_structures_atoms(page, tmp_path):
    page.fill("#cif-text", HCP_MAGNESIUM_CIF)
    page.select_option("#cif-radius", "4")
    page.click("#cif-encode")
    page.wait_for_selector("#cif-result:not([hidden])", timeout=60_000)
    assert page.get_attribute("#cif-group", "data-group") == "194"
    page.click("#cif-plot")  # the structure's setting, in its own cell
    plotted = _plot(page, 194, level=0.25)
    shot = tmp_path / "hexagonal.png"
    image = _screenshot(page, shot)
    assert plotted["cell"] == "structure" and _edge_angle(plotted) == pytest.approx(120, abs=1e-6)
    origin, a_end, _, b_end = np.asarray(plotted["corners"])
    assert np.linalg.norm(a_end - origin) == pytest.approx(np.linalg.norm(b_end - origin))
    _check_face_is_drawn_as_placed(image, plotted, shot)
    # One atom lies on z = 1/4 (the other is 2.6 A away): drawn at (1/3, 2/3), in its colour.
    atoms = plotted["atoms"]
    assert [(atom["element"], round(atom["s"], 4), round(atom["t"], 4)) for atom in atoms] == [("Mg", 0.3333, 0.6667)]
    assert atoms[0]["distance"] < 1e-5
    row, column = _at(plotted["corners"], 1 / 3, 2 / 3)
    near = image[row - 2 : row + 3, column - 2 : column + 3].reshape(-1, 3)
    assert any(np.abs(pixel - MAGNESIUM_COLOUR).max() < 30 for pixel in near), f"no atom drawn: see {shot}"
    assert "encoded structure's cell" in page.inner_text("#plot-cell") and "120.0°" in page.inner_text("#plot-cell")
    assert page.problems == []


@pytest.mark.slow  # browser
def test_a_monoclinic_face_is_drawn_oblique(page, tmp_path):
    plotted = _plot(page, 14, axis=1, level=0.125)  # the a-c face, at the angle beta
    shot = tmp_path / "monoclinic.png"
    image = _screenshot(page, shot)
    assert plotted["cell"] == "monoclinic" and _edge_angle(plotted) == pytest.approx(105, abs=1e-6)
    _check_face_is_drawn_as_placed(image, plotted, shot)
    assert "representative monoclinic cell" in page.inner_text("#plot-cell")
    square = _plot(page, 14, axis=2, level=0.0)  # a-b: perpendicular for unique axis b
    assert _edge_angle(square) == pytest.approx(90, abs=1e-6)
    assert page.problems == []


@pytest.mark.slow  # browser
def test_the_plot_shows_that_it_is_loading(page):
    _plot(page, 221, function=0)
    held = []
    page.route("**/v1/encode", lambda route: held.append(route))
    page.fill("#function", "2")
    page.select_option("#grid-size", "32")  # a grid not cached: the page must ask the service
    page.wait_for_selector("#plot-loading:visible")
    assert page.get_attribute("#plot-area", "aria-busy") == "true"
    assert page.get_attribute("#plot-canvas", "data-state") == "loading"
    for _ in range(200):  # the held request reaches this side a moment after the page sent it
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page showed it was loading but asked the service for nothing"
    for route in held:
        route.continue_()
    page.unroute("**/v1/encode")
    _wait(page, "window.basisExplorer.lastPlot.size === 32")
    page.wait_for_selector("#plot-loading", state="hidden")
    assert page.get_attribute("#plot-area", "aria-busy") == "false"
    assert page.problems == []


@pytest.mark.slow  # browser
def test_a_radius_without_functions_is_explained(page):
    page.click("#group-list tr[data-group='230']")
    page.wait_for_selector("#setting-line:has-text('230 Ia-3d')")
    page.select_option("#radius", "2")
    page.wait_for_selector("#plot-status.error")
    note = page.inner_text("#plot-status")
    assert "no invariant function at radius 2" in note and "systematic absence" in note
    assert "first radius with one is 3" in note
    assert "none" in page.locator("#radius option[value='2']").inner_text()
    empty = page.locator("#group-list tr[data-group='230'] td.empty")
    assert empty.count() == 1 and "systematic absences" in empty.get_attribute("title")


@pytest.mark.slow  # browser
def test_every_feature_of_every_atom_is_reachable(page, server):
    page.fill("#cif-text", HCP_MAGNESIUM_CIF)
    page.select_option("#cif-radius", "4")
    page.click("#cif-encode")
    page.wait_for_selector("#cif-result:not([hidden])", timeout=60_000)
    n_basis = page.evaluate("() => window.basisExplorer.lastStructure.n_basis")
    assert n_basis > 20  # wider than the panel
    headers = page.locator("#atom-table thead th").all_inner_texts()
    assert headers[5:] == [f"f{k}" for k in range(n_basis)]
    last = page.locator("#atom-table tbody tr").last.locator("td").last
    frame = page.locator("#cif-result .table-scroll")
    assert frame.evaluate("(node) => node.scrollWidth > node.clientWidth")  # it has to scroll
    last.scroll_into_view_if_needed()
    box, frame = last.bounding_box(), frame.bounding_box()
    assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1
    assert float(last.inner_text()) == pytest.approx(
        page.evaluate("() => window.basisExplorer.lastStructure.encodings.real.at(-1).at(-1)"), rel=1e-3, abs=1e-12
    )


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
