"""The workbook in a real browser: JupyterLab (token on) driven by headless Chromium.

Chromium comes from the system (Debian's `chromium` package), never a Playwright download.
Screenshots go to test-artifacts/screenshots/ (or $KAFKALAB_ARTIFACTS).
"""
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kafkalab.broker.local import free_port
from kafkalab.runtime import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
ARTIFACTS = Path(os.environ.get("KAFKALAB_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"
# what a broken widget or chart prints in the console
WIDGET_ERRORS = ("widget", "Widget", "plotly", "anywidget", "Failed to load model", "Could not create",
                 "Error displaying")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a free port, on a copy of the notebooks (running them must not touch git)."""
    root = tmp_path_factory.mktemp("lab")
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    settings = tmp_path_factory.mktemp("lab-settings") / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news pop-up
    # every cell attached and laid out: under the default windowing ("contentVisibility") the browser skips
    # the layout of cells out of view, and a plotly chart that first renders there may not be drawn by the
    # time the test looks for it (seen once in CI: the lag chart's widget was in the outputs, its plot never
    # appeared in 30 s); a learner scrolls to it, the test has no eyes for that
    tracker = settings.parent / "notebook-extension"
    tracker.mkdir()
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    token, port = secrets.token_hex(16), free_port()
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0",
            f"--LabApp.user_settings_dir={settings.parents[1]}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    log = open(root / "jupyterlab.log", "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    def up():
        if proc.poll() is not None:
            pytest.fail("JupyterLab exited:\n" + (root / "jupyterlab.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_until(up, 60, interval=0.3, what="JupyterLab to start")
    except TimeoutError:
        proc.kill()
        raise
    # a page without the token must not get in
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{base}/api/contents", timeout=5)
    assert denied.value.code == 403
    yield {"base": base, "token": token, "root": root}
    proc.terminate()                       # stops its kernels too
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


OPENED = """(name) => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return w && w.context && w.context.path === name && w.content.widgets.length > 0 && k && k.status === 'idle';
}"""


def open_notebook(browser, lab, name):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # ?reset: a fresh workspace, so the notebooks opened before are not reopened (with kernels)
    page.goto(f"{lab['base']}/lab/tree/{name}?reset&token={lab['token']}", timeout=60_000)
    page.wait_for_function(OPENED, arg=name, timeout=60_000)
    return page, errors


def close_notebook(page):
    """Shut its kernel down (a page closed in a browser would leave it running), then close."""
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    page.close()


def run_cell(page, index, timeout_s=120):
    """Run one code cell through JupyterLab's own command and wait until it has finished
    (markdown cells are rendered on opening: running them only costs a round trip)."""
    if page.evaluate("(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.type", index) != "code":
        return
    page.evaluate("""async (i) => {
        const nb = window.jupyterapp.shell.currentWidget.content;
        nb.activeCellIndex = i;
        await window.jupyterapp.commands.execute('notebook:run-cell');
    }""", index)
    page.wait_for_function("""(i) => {
        const w = window.jupyterapp.shell.currentWidget;
        const cell = w.content.widgets[i];
        return cell.model.executionCount !== null && w.sessionContext.session.kernel.status === 'idle';
    }""", arg=index, timeout=timeout_s * 1000)


def cell_sources(page) -> list[str]:
    return page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets"
                         ".map(c => c.model.sharedModel.getSource())")


# from plotly.js's computed traces: a trace's input `x` may be a typed-array spec ({dtype, bdata}) with no length
POINTS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(
    el => (el._fullData || []).reduce((n, t) => n + (t.x && t.x.length ? t.x.length : 0), 0))"""


def plot_points(page) -> list[int]:
    """Points per rendered plotly chart, read from the plotly divs themselves."""
    return page.evaluate(POINTS)


def failed_cells(page) -> list[str]:
    """Each cell that ended in an error: its first line, and the error."""
    return page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets
        .filter(c => c.model.type === 'code' && c.model.outputs.toJSON().some(o => o.output_type === 'error'))
        .map(c => c.model.sharedModel.getSource().slice(0, 60) + ' -> ' + c.model.outputs.toJSON()
            .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue).join('; '))""")


# anywidget (0.9 to at least 0.11.0, the newest) rejects a model's `ready` when its ESM has not loaded within 2 s, and
# from then on drops every comm message to that model, silently (manzt/anywidget #828, #804). plotly's FigureWidget
# ESM is a 5 MB bundle imported again for each chart: about 2 s in this Chromium on an idle machine, 4 to 8 s on a
# busy one. The chart is then drawn from the state its model was opened with, which plotly leaves empty (the
# title, template and traces come in later messages): a plot with no title and no trace. kafkalab titles every live
# chart, so that signature is this upstream failure and nothing kafkalab sends.
UPSTREAM_DROP = ("anywidget dropped every update to a chart whose 5 MB plotly ESM took over 2 s to load (its fixed "
                 "model timeout); the plot kept the empty state it was opened with")


def drawn_state(page, index, errors, lab) -> tuple[str, bool]:
    """What the page holds when a chart is missing (the cell's outputs in the model and in the DOM, every
    plotly div with its title and trace count, the console's errors, the end of JupyterLab's log), and
    whether a plot shows the upstream signature above."""
    state = page.evaluate("""(i) => {
        const cell = window.jupyterapp.shell.currentWidget.content.widgets[i];
        const area = cell.node.querySelector('.jp-OutputArea');
        return {
            outputs: cell.model.outputs.toJSON().map(o => JSON.stringify(o).slice(0, 200)),
            dom: area ? [...area.querySelectorAll('*')].slice(0, 40).map(
                e => e.tagName.toLowerCase() + '.' + [...e.classList].slice(0, 3).join('.')).join(' ') : 'none',
            text: area ? area.innerText.slice(0, 300) : '',
            plots: [...document.querySelectorAll('.js-plotly-plot')].map(
                el => [(el.querySelector('text.gtitle') || {}).textContent || '(no title)',
                       (el._fullData || []).length]),
        };
    }""", index)
    log = (lab["root"] / "jupyterlab.log").read_text(errors="replace")[-1500:]
    dropped = ["(no title)", 0] in state["plots"]
    return f"{state}; console errors: {errors[-10:]}; JupyterLab log ends: {log}", dropped


def missing_chart(what: str, details: tuple[str, bool]):
    """Fail, unless the page shows the upstream failure above: then xfail, saying so (a known defect of a
    dependency, recorded for a fix in kafkalab's design; any other way for a chart to go missing fails)."""
    text, dropped = details
    if dropped:
        pytest.xfail(f"{UPSTREAM_DROP}: {what}; {text[:1500]}")
    raise AssertionError(f"{what}: {text}")


def widget_errors(errors):
    return [e for e in errors if any(s in e for s in WIDGET_ERRORS)]


def test_live_lab_runs_in_the_browser_and_its_widgets_drive_the_producers(browser, lab):
    page, errors = open_notebook(browser, lab, "00b_live_lab.ipynb")
    sources = cell_sources(page)
    upto = next(i for i, s in enumerate(sources) if "ThroughputChart(" in s)
    for i in range(upto + 1):
        run_cell(page, i)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=60_000)
    # the charts move on their own: their point count grows (not on a fixed sleep: while the other
    # test worker starts JVMs on these 2 cores, the kernel's refreshes can come late)
    before = plot_points(page)
    try:
        page.wait_for_function(f"(n) => ({POINTS})().reduce((a, b) => a + b, 0) > n",
                               arg=sum(before), timeout=30_000)
    except Exception:
        missing_chart(f"the live charts did not gain points in 30 s: {before} -> {plot_points(page)}",
                      drawn_state(page, upto, errors, lab))

    rate = page.locator(".widget-text:has(label:text-is('rate (msg/s)')) input").first
    rate.fill("345")
    rate.press("Enter")
    page.wait_for_selector("text=target 345.0 msg/s", timeout=20_000)   # browser -> kernel -> producer -> stats
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live-lab-producer-panel.png"), full_page=False)
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    page.wait_for_timeout(1500)                      # two more refreshes of the window chart
    page.screenshot(path=str(ARTIFACTS / "live-lab-windows.png"), full_page=False)

    lag_cell = next(i for i, s in enumerate(sources) if "LagChart(" in s)
    check = next(i for i, s in enumerate(sources) if "throughput.plotted()" in s)
    for i in range(upto + 1, check + 1):             # the lag chart, the cells that let it move, the read-back
        run_cell(page, i)
    page.locator(".jp-Cell").nth(upto).screenshot(path=str(ARTIFACTS / "live-lab-throughput.png"))
    # bring the lag chart into view (for the screenshot, and for the rendering a learner sees)
    page.evaluate("(i) => window.jupyterapp.shell.currentWidget.content.scrollToItem(i, 'start')", lag_cell)
    lag_plot = page.locator(".js-plotly-plot:has(text.gtitle:has-text('lag'))").first
    try:
        lag_plot.wait_for(timeout=30_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "live-lab-lag-missing.png"), full_page=False)
        missing_chart("no lag chart drawn", drawn_state(page, lag_cell, errors, lab))
    page.locator(".jp-Cell").nth(lag_cell).screenshot(path=str(ARTIFACTS / "live-lab-lag.png"))   # chart and table
    # "why is this window still open?": the sources paused, one last record windowed, the idle timer running
    quiet_cell = next(i for i, s in enumerate(sources) if s.startswith("steady.pause(); bursty.pause()"))
    for i in range(check + 1, quiet_cell + 1):
        run_cell(page, i)
    window_cell = next(i for i, s in enumerate(sources) if "WindowChart(" in s)
    inspector = page.locator(".jp-Cell").nth(window_cell).locator(".widget-html:has-text('window inspector')")
    try:
        page.wait_for_function(r"""(i) => {
            const text = window.jupyterapp.shell.currentWidget.content.widgets[i].node.innerText;
            const kept = /late records \((\d+) kept/.exec(text);   // a busy machine makes late records of its own
            return kept && +kept[1] >= 3 && text.includes('late-key') && text.includes('partition 2: stream time');
        }""", arg=window_cell, timeout=30_000)
    except Exception:     # (its idle countdown is not awaited: after 5 s of quiet it is gone, by design)
        raise AssertionError(f"the inspector did not show three partitions and the 3 late records sent in 30 s: "
                             f"{inspector.inner_text()!r}") from None
    page.locator(".jp-Cell").nth(window_cell).screenshot(path=str(ARTIFACTS / "live-lab-inspector.png"))
    for i in range(quiet_cell + 1, len(sources)):    # the rest, down to the stop_all cell
        run_cell(page, i)
    failed = failed_cells(page)
    assert not failed, f"cells failed in the browser: {failed}"
    assert not widget_errors(errors), widget_errors(errors)
    close_notebook(page)


def test_every_notebook_opens_with_a_kernel_and_no_console_error(browser, lab):
    """What opening checks: each notebook loads, renders its cells and connects to a Python kernel
    with no error in the console. (The notebooks carry no outputs, so no widget renders on
    opening; the live lab test above runs one and checks its widgets and charts.) One page opens
    them all, on one kernel."""
    fresh = lab["root"] / "as-shipped"        # the live lab test above saved 00b with its outputs
    fresh.mkdir()
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, fresh / nb.name)
    names = sorted(f"as-shipped/{p.name}" for p in fresh.glob("*.ipynb"))
    page, errors = open_notebook(browser, lab, names[0])
    kernel = page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id")
    for name in names[1:]:           # on the first one's kernel: one kernel start, not seventeen
        page.evaluate("""async ([n, id]) => {
            await window.jupyterapp.commands.execute('docmanager:open', {path: n, kernel: {id}}); }""",
                      [name, kernel])
        page.wait_for_function(OPENED, arg=name, timeout=60_000)
        assert not errors, f"{name}: {errors}"
    assert len(names) >= 17 and not errors
    page.evaluate("() => window.jupyterapp.serviceManager.sessions.shutdownAll()")   # their kernels
    page.close()


BROWSER_SETUP = """\
import json, random, time
from kafka import KafkaProducer
import kafkalab
from kafkalab import Browser
topic = kafkalab.recreate_topic("web-events", partitions=3)
rng, now = random.Random(7), int(time.time() - 60) * 1000
with KafkaProducer(**kafkalab.client_config()) as p:
    for i in range(120):
        user = f"user-{rng.randrange(40)}"
        event = {"path": rng.choice(["/", "/cart", "/checkout", "/search"]), "ms": rng.randrange(5, 900),
                 "status": rng.choice([200] * 8 + [404, 503]),
                 "user": {"id": user, "country": rng.choice(["FR", "DE", "US", "JP"])}}
        p.send(topic, key=user.encode(), value=json.dumps(event).encode(), timestamp_ms=now + i * 250,
               headers=[("trace-id", f"{rng.getrandbits(64):016x}".encode())])
"""


def test_the_topic_browser_pages_and_shows_a_record(browser, lab):
    """Browser(topic) in JupyterLab: "next ›" reads the next page, the record # box shows one record's
    JSON and headers. Saves browser-widget.png (the README's screenshot)."""
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(BROWSER_SETUP),
                                         nbformat.v4.new_code_cell("Browser(topic, page_size=20)")],
                                  metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                                           "name": "python3"}})
    nbformat.write(nb, lab["root"] / "topic_browser.ipynb")
    page, errors = open_notebook(browser, lab, "topic_browser.ipynb")
    page.set_viewport_size({"width": 1400, "height": 1400})
    for i in range(2):
        run_cell(page, i)
    status = page.locator(".widget-html:has-text('records ·')").first
    status.wait_for(timeout=30_000)
    assert "the start" in status.inner_text()
    page.locator("button:has-text('next ›')").click()
    page.wait_for_function("""() => [...document.querySelectorAll('.widget-html')].some(
        e => /offsets p0: \\d+-/.test(e.innerText) && !e.innerText.includes('the start'))""", timeout=30_000)
    record = page.locator(".widget-inline-hbox:has(label:text-is('record #')) input").first
    record.fill("3")
    record.press("Enter")
    page.wait_for_selector("tr.kl-sel >> td:text-is('3')", timeout=30_000)     # browser -> kernel -> table
    detail = page.locator(".widget-html:has(pre.kl-pre)").first
    assert "trace-id" in detail.inner_text() and '"country"' in detail.inner_text()
    assert page.locator("tr.kl-sel").count() == 1 and page.locator(".kl-table tr").count() == 21
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.content.scrollToItem(1, 'start')")
    page.locator(".jp-Cell").nth(1).screenshot(path=str(ARTIFACTS / "browser-widget.png"))
    failed = failed_cells(page)
    assert not failed, f"cells failed in the browser: {failed}"
    assert not widget_errors(errors), widget_errors(errors)
    close_notebook(page)


LAG_HISTORY_SETUP = """\
import json, time
from kafka import KafkaConsumer, KafkaProducer
import kafkalab
topic = kafkalab.recreate_topic("report-input", partitions=3)
with KafkaProducer(**kafkalab.client_config()) as p:
    for i in range(6000):
        p.send(topic, key=f"k{i % 50}".encode(), value=json.dumps({"i": i}).encode())
group = f"report-{int(time.time())}"
watcher = kafkalab.watch(group, interval=0.5)
job = KafkaConsumer(topic, **kafkalab.client_config(group_id=group, enable_auto_commit=False,
                                                    auto_offset_reset="earliest"))
read = 0
for goal in (1500, 3000, 4500, 6000):
    def burst():
        global read
        read += sum(map(len, job.poll(timeout_ms=200, max_records=goal - read).values()))
        return read >= goal
    kafkalab.wait_until(burst, 60, interval=0, what=f"the job to read {goal} records")
    job.commit()
    def recorded():
        samples = kafkalab.lag_history(group, since="-10min")
        return not samples.empty and int(samples.groupby("time")["committed"].sum().max()) >= read
    kafkalab.wait_until(recorded, 30, what="the watcher to record the commit")
job.close()
watcher.stop()                     # the history is complete: the chart must show all of it, no more
history = kafkalab.lag_history(group, since="-10min")
len(history)
"""


def test_the_lag_history_chart_shows_every_recorded_sample(browser, lab):
    """A report job commits in four bursts while `kafkalab.watch` samples it: the chart in JupyterLab
    plots every recorded sample of every partition. Saves lag-history.png (the README's screenshot)."""
    import nbformat
    cells = [LAG_HISTORY_SETUP, 'kafkalab.lag_history_chart(group, since="-10min")']
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells],
                                  metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                                           "name": "python3"}})
    nbformat.write(nb, lab["root"] / "lag_history.ipynb")
    page, errors = open_notebook(browser, lab, "lag_history.ipynb")
    page.set_viewport_size({"width": 1400, "height": 1000})
    run_cell(page, 0)
    rows = int(page.locator(".jp-Cell").nth(0).locator(".jp-OutputArea-output").last.inner_text())
    run_cell(page, 1)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 1", timeout=30_000)
    plotted = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')][0].data
        .filter(t => t.legendgroup !== 'status').reduce((n, t) => n + t.x.length, 0)""")
    assert plotted == rows and rows >= 3 * 5, "every sample of every partition is a point on the chart"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(".jp-Cell").nth(1).screenshot(path=str(ARTIFACTS / "lag-history.png"))
    failed = failed_cells(page)
    assert not failed, f"cells failed in the browser: {failed}"
    assert not widget_errors(errors), widget_errors(errors)
    close_notebook(page)
