"""The static site: executed pages, every chart a notebook shows still on its page and interactive
(plotly), controls explained, an index, no broken internal link, and nothing loaded from the network."""
import copy
import html
import re
from pathlib import Path

import pytest

from kafkalab import site as site_module
from kafkalab.site import PLOTLY_MIME, WIDGET_MIME, build, local_links

pytestmark = pytest.mark.integration
NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
PAGES = ["00_start_here", "13_web_analytics", "14_replication"]
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site of three notebooks, built once, with each notebook as it was executed (before build()
    made its outputs static) and the ids of the widgets alive in its kernel at the end."""
    out = tmp_path_factory.mktemp("site") / "site"
    executed = {}

    def keep_a_copy(path, timeout):
        nb, rendered = execute(path, timeout)
        executed[path.stem] = copy.deepcopy(nb), set(rendered)
        return nb, rendered

    execute = site_module.execute
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(site_module, "execute", keep_a_copy)
        report = build([NOTEBOOKS / f"{stem}.ipynb" for stem in PAGES], out)
    return {"out": out, "report": report, "executed": executed}


def figures_shown(nb, live: set) -> int:
    """The figures a reader of the executed notebook saw: plotly figures, and plotly FigureWidgets (alone
    or in boxes) whose widget was still alive at the end, found in the widget state nbclient recorded."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})

    def figures(model_id) -> int:
        model = state.get(model_id, {}).get("state", {})
        if "_js2py_restyle" in model:          # a trait only plotly's FigureWidget has
            return 1
        return sum(figures(child.removeprefix("IPY_MODEL_")) for child in model.get("children", []))

    shown = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_MIME in data:
                shown += 1
            elif data.get(WIDGET_MIME, {}).get("model_id") in live:
                shown += figures(data[WIDGET_MIME]["model_id"])
    return shown


def charts_on(page: Path) -> int:
    return page.read_text(encoding="utf-8").count('class="plotly-graph-div"')


def external_references(text: str) -> list[str]:
    """Scripts, stylesheets, fonts and imports the page would fetch from another host."""
    refs = re.findall(r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*["']?([^"'\s>]+)""", text)
    refs += re.findall(r"""(?:@import\s+|url\(\s*)["']?([^"')\s;]+)""", text)
    return [ref for ref in refs if re.match(r"(?i)(https?:|//)", ref)]


def test_every_page_has_the_charts_its_notebook_showed_and_working_links(site):
    out, report = site["out"], site["report"]
    assert sorted(p.name for p in out.glob("*.html")) == sorted([f"{stem}.html" for stem in PAGES] + ["index.html"])
    assert set(local_links(out / "index.html")) == {f"{stem}.html" for stem in PAGES}
    for page in out.glob("*.html"):
        broken = [link for link in local_links(page) if not (out / link).exists()]
        assert not broken, f"{page.name} links to missing {broken}"
    index = (out / "index.html").read_text()
    for stem in PAGES:
        nb, live = site["executed"][stem]
        shown, on_page = figures_shown(nb, live), charts_on(out / f"{stem}.html")
        assert on_page == shown, f"{stem}: the notebook showed {shown} figures, its page has {on_page} charts"
        assert report[f"{stem}.ipynb"] == on_page
        listed = re.search(rf"href='{stem}.html'>([^<]*)</a> <small>\((\d+) interactive", index)
        assert listed and int(listed[2]) == on_page
        title = re.search(r"<title>([^<]*)</title>", (out / f"{stem}.html").read_text())
        assert title and html.unescape(title[1]) == html.unescape(listed[1]) != "Notebook", (
            f"{stem}'s page is titled {title and title[1]!r}, its index entry {listed[1]!r}")
    assert report["14_replication.ipynb"] >= 2          # its two live time-series charts, frozen at the end
    web = (out / "13_web_analytics.html").read_text()
    assert '"type":"funnel"' in web                       # px.funnel: a plotly figure, not a widget
    text = (out / "14_replication.html").read_text()
    assert "run this notebook in JupyterLab to use them" in text      # the dropdown and sliders
    assert WIDGET_MIME not in text
    assert "All 3 regions hold the same" in text                        # it really ran
    assert (out / "plotly.min.js").stat().st_size > 1_000_000


def test_pages_load_nothing_from_the_network(site):
    for page in site["out"].glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not external_references(text), f"{page.name} loads {external_references(text)}"
        # nor from a script's code (the widget manager's loader, mermaid.js's import)
        loaders = [s for s in ("@jupyter-widgets/html-manager", "unpkg.com", "cdnjs.cloudflare.com", "cdn.jsdelivr")
                   if s in text]
        assert not loaders, f"{page.name} mentions {loaders}"
    assert "plotly.min.js" in local_links(site["out"] / "14_replication.html")     # the site's own copy


DRAWN = "() => [...document.querySelectorAll('.plotly-graph-div')].filter(d => d.querySelector('.main-svg')).length"


def test_pages_draw_their_charts_offline_with_no_console_error(site, browser):
    """Opened from disk with every request but file: refused: each page draws all its charts and logs
    no error (a script from a CDN would fail to load, and a chart without plotly.js would throw)."""
    context = browser.new_context()
    outside = []

    def only_files(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()
    context.route("**/*", only_files)
    drawn = 0
    try:
        for page_file in sorted(site["out"].glob("*.html")):
            page, errors = context.new_page(), []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri(), wait_until="load")
            charts = charts_on(page_file)
            try:
                page.wait_for_function(f"() => ({DRAWN})() === {charts}", timeout=30_000)
            except Exception:
                raise AssertionError(f"{page_file.name}: {page.evaluate(DRAWN)} of {charts} charts drawn; "
                                     f"console errors: {errors}") from None
            assert not errors, f"{page_file.name}: {errors} (requests refused: {outside})"
            drawn += charts
            page.close()
        assert not outside, f"the pages asked the network for {outside}"
        assert drawn == sum(site["report"].values()) > 0
    finally:
        context.close()
