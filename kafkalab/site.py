"""A static site of the executed notebooks, for reading without a broker, and offline.

Each notebook is run top to bottom against a real broker; then, in the same kernel, every plotly
FigureWidget still alive is turned into a self-contained interactive plotly chart (its final
state: zoom, hover and legend toggles work), and every other widget (sliders, buttons) into a
note that it needs a live kernel. Plain plotly figures (`px.bar(...)` as a cell's value) become
the same charts. nbconvert's HTML exporter writes one page per notebook, loading nothing from the
network (plotly.js is one file in the site), and an index links them in teaching order.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import nbformat

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"      # a plotly figure shown in a notebook

# Runs in the notebook's kernel once all its cells have run: model id -> HTML of what the widget
# shows now. Figures become plotly charts, HTML widgets keep their text, boxes render their
# children, and controls (sliders, buttons) become one note.
SNAPSHOT = """
import json as _json
import ipywidgets as _w
from ipywidgets.widgets.widget import _instances as _kl_widgets
import plotly.graph_objects as _go
_KL_NOTE = ("<p class='kl-widget'><em>Interactive controls (sliders, buttons, panels) here: "
            "run this notebook in JupyterLab to use them.</em></p>")

def _kl_html(w):
    if isinstance(w, _go.FigureWidget):
        return _go.Figure(w).to_html(include_plotlyjs=False, full_html=False), 1
    if isinstance(w, (_w.HTML, _w.HTMLMath)):
        return w.value, 0
    if isinstance(w, _w.Box):
        parts, charts, note = [], 0, False
        for child in w.children:
            html, n = _kl_html(child)
            if html is None:
                note = True
            else:
                parts.append(html)
                charts += n
        return ("".join(parts) + (_KL_NOTE if note else "")), charts
    return None, 0

_kl_out = {}
for _id, _wd in list(_kl_widgets.items()):
    _html, _n = _kl_html(_wd)
    _kl_out[_id] = [_html if _html is not None else _KL_NOTE, _n]
print(_json.dumps(_kl_out))
"""


def title_of(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return "untitled"


def static_outputs(nb, rendered: dict) -> int:
    """Replace what the HTML template cannot show by what it showed at the end: widgets by the kernel's
    snapshot (`rendered`), plotly figures by plotly charts. Returns how many charts the page has."""
    import plotly.io as pio

    charts = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_MIME in data:           # the template has no renderer for it: it would be left empty
                figure = dict(data[PLOTLY_MIME])
                config = figure.pop("config", None)
                out["data"] = {"text/html": pio.to_html(figure, config=config, include_plotlyjs=False,
                                                        full_html=False, validate=False)}
                charts += 1
            elif WIDGET_MIME in data:
                html, n = rendered.get(data[WIDGET_MIME].get("model_id"), (None, 0))
                out["data"] = {"text/html": html or "<p class='kl-widget'><em>A widget that needs a live kernel: "
                                                    "run this notebook in JupyterLab to see it.</em></p>"}
                charts += n
    # the widgets' state: no widget is left on the page to use it, it holds plotly.js once per FigureWidget,
    # and with it in the metadata the template loads the widget manager from unpkg.com
    nb.metadata.pop("widgets", None)
    return charts


def execute(path: Path, timeout: int = 300) -> tuple[nbformat.NotebookNode, dict]:
    """Run the notebook in a fresh kernel (in its own folder); return it as `jupyter nbconvert --execute`
    leaves it (outputs and widget state), with the kernel's snapshot of the widgets alive at the end
    (model id -> [HTML, charts])."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
        probe = nbformat.v4.new_code_cell(SNAPSHOT)
        nb.cells.append(probe)
        client.execute_cell(probe, len(nb.cells) - 1)
        nb.cells.pop()
        client.set_widgets_metadata()
    text = "".join(o.get("text", "") for o in probe.outputs if o.get("name") == "stdout")
    return nb, json.loads(text.strip().splitlines()[-1]) if text.strip() else {}


# nbconvert's lab template, with nothing from a CDN: plotly.js from the site's folder in place of
# require.js (with require.js on the page, plotly.min.js defines an AMD module and no global Plotly),
# and no MathJax or mermaid.js (no notebook has math or diagrams); a navigation bar on top.
PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}
<script src="plotly.min.js" charset="utf-8"></script>
{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block body_header -%}
{{ super() }}
<style>.kl-nav{font:14px sans-serif;margin:1em 2em} .kl-widget{color:#666}</style>
<div class="kl-nav"><a href="index.html">&larr; all notebooks</a>{{ resources.kl_nav }}</div>
{%- endblock body_header -%}
"""


def build(notebooks: list[Path], out: Path, timeout: int = 300) -> dict:
    """Execute and export `notebooks` (in order) into `out`, with index.html; returns a report."""
    from nbconvert import HTMLExporter
    from plotly.offline import get_plotlyjs

    out.mkdir(parents=True, exist_ok=True)
    (out / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")   # once: the site works offline
    exporter = HTMLExporter(template_name="lab", raw_template=PAGE_TEMPLATE)
    pages, report = [], {}
    notebooks = sorted(notebooks)
    for i, path in enumerate(notebooks):
        nb, rendered = execute(path, timeout)
        charts = static_outputs(nb, rendered)
        nav = ""
        if i > 0:
            nav += f" · <a href='{notebooks[i - 1].stem}.html'>previous</a>"
        if i + 1 < len(notebooks):
            nav += f" · <a href='{notebooks[i + 1].stem}.html'>next</a>"
        title = title_of(nb)                 # the page's <title>, not nbconvert's "Notebook"
        body, _ = exporter.from_notebook_node(nb, resources={"kl_nav": nav, "metadata": {"name": title}})
        (out / f"{path.stem}.html").write_text(body, encoding="utf-8")
        pages.append((path.stem, title, charts))
        report[path.name] = charts
    items = "\n".join(f"<li><a href='{stem}.html'>{html.escape(title)}</a> "
                      f"<small>({charts} interactive chart{'s' if charts != 1 else ''})</small></li>"
                      for stem, title, charts in pages)
    (out / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>kafkalab notebooks</title>"
        "<body style='font:16px sans-serif;max-width:60em;margin:2em auto'>"
        "<h1>kafkalab: the executed notebooks</h1><p>Each page was run top to bottom against a real Apache "
        "Kafka broker; its charts are interactive (zoom, hover, legend). To change the inputs, run the "
        "notebooks in JupyterLab (<code>make lab</code>).</p>"
        f"<ol>{items}</ol></body>", encoding="utf-8")
    return report


def local_links(page: Path) -> list[str]:
    """The page's relative links and scripts (what must exist inside the site)."""
    text = page.read_text(encoding="utf-8")
    return [h for h in re.findall(r"""(?:href|src)=['"]([^'"#]+)['"]""", text)
            if not re.match(r"^[a-z]+:", h) and not h.startswith("//")]
