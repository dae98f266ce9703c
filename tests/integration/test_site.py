"""The static site: executed pages, charts still interactive (plotly), controls explained,
an index, and no broken internal link."""
from pathlib import Path

import pytest

from kafkalab.site import WIDGET_MIME, build, local_links

pytestmark = pytest.mark.integration
NOTEBOOKS = Path(__file__).parents[2] / "notebooks"


def test_site_of_two_notebooks_with_working_links_and_live_charts(tmp_path):
    out = tmp_path / "site"
    report = build([NOTEBOOKS / "00_start_here.ipynb", NOTEBOOKS / "14_replication.ipynb"], out)
    assert report["14_replication.ipynb"] >= 2          # its two live time-series charts, frozen at the end
    pages = sorted(p.name for p in out.glob("*.html"))
    assert pages == ["00_start_here.html", "14_replication.html", "index.html"]
    assert set(local_links(out / "index.html")) == {"00_start_here.html", "14_replication.html"}
    for page in out.glob("*.html"):
        broken = [link for link in local_links(page) if not (out / link).exists()]
        assert not broken, f"{page.name} links to missing {broken}"
    text = (out / "14_replication.html").read_text()
    assert text.count("Plotly.newPlot") >= 2 and "plotly.min.js" in text
    assert "run this notebook in JupyterLab to use them" in text      # the dropdown and sliders
    assert WIDGET_MIME not in text
    assert "All 3 regions hold the same" in text                        # it really ran
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
