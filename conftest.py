"""Test-session wiring: an isolated kafkalab home, a real broker when any test needs one, and
every notebook run twice in one kernel.

The broker gets its own data dir and a free port, so a lab broker the user is running is never
touched. Notebooks (nbval) reach it through KAFKA_BOOTSTRAP_SERVERS, which kernels inherit.
After a notebook's cells, nbval runs them all again in the same kernel (what a learner does
with "Run All" after playing) and checks the second run left no more kafkalab threads than the
first: two executions per notebook prove both that it runs and that it re-runs.
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_session = {}


def pytest_configure(config):
    home = Path(tempfile.mkdtemp(prefix="kafkalab-test-"))
    _session["home"] = home
    os.environ["KAFKALAB_HOME"] = str(home / "default")  # LocalBroker() never sees ~/.local
    # nor the user's caches (verified jars, format template, JVM start-up caches); xdist workers share
    # their controller's, so a cache one of them makes speeds up every later broker start of the run
    os.environ.setdefault("KAFKALAB_TEST_CACHE_DIR", str(home / "cache"))
    os.environ["KAFKALAB_CACHE_DIR"] = os.environ["KAFKALAB_TEST_CACHE_DIR"]
    os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)


def _needs_broker(item) -> bool:
    return item.get_closest_marker("integration") is not None or item.path.suffix == ".ipynb"


COUNT_THREADS = "len([t for t in __import__('threading').enumerate() if t.name.startswith('kafkalab:')])"
AFTER_FIRST_RUN = f"_kafkalab_threads_after_run_1 = {COUNT_THREADS}"
AFTER_SECOND_RUN = (f"_left = {COUNT_THREADS} - _kafkalab_threads_after_run_1\n"
                    "assert _left <= 0, f're-running the notebook left {_left} more kafkalab threads: ' + "
                    "str(sorted(t.name for t in __import__('threading').enumerate() "
                    "if t.name.startswith('kafkalab:')))")


def _with_second_runs(items: list) -> list:
    """Each notebook's cells, a thread count, the same cells again, and the thread check."""
    from collections import defaultdict

    import nbformat
    from nbval.plugin import IPyNbCell

    def extra(file, cells):
        def check(name, source):
            return IPyNbCell.from_parent(file, name=name, cell_num=-1, cell=nbformat.v4.new_code_cell(source),
                                         options=defaultdict(bool, check=False))
        return ([check("threads after run 1", AFTER_FIRST_RUN)]
                + [IPyNbCell.from_parent(file, name=f"{c.name} (run 2)", cell_num=c.cell_num, cell=c.cell,
                                         options=c.options) for c in cells]
                + [check("run 2 leaves no extra thread", AFTER_SECOND_RUN)])

    out, cells = [], []
    for item in items + [None]:
        parent = getattr(item, "parent", None)
        if cells and (item is None or parent is not cells[0].parent):
            out += extra(cells[0].parent, cells)
            cells = []
        if isinstance(item, IPyNbCell):
            cells.append(item)
        if item is not None:
            out.append(item)
    return out


# `make test` runs two pytest-xdist workers. Every test file is one unit of work kept in one worker
# (a notebook's cells share its kernel), except files that must share one: the cluster's tests and
# notebook 15 use one three-node cluster on fixed ports; the secure broker's tests and notebook 08
# one secure broker; the tests that start brokers on the default port must not race for it. Units go
# out longest first (estimated seconds; notebooks run twice), so the two workers finish together.
# (pytest-xdist's own --dist loadgroup cannot do this on pytest 9: it renames node ids through an
# attribute pytest 9 no longer reads, so its groups silently split.)
GROUPS = {"test_cluster.py": "cluster", "15_failure_lab.ipynb": "cluster",
          "test_secure.py": "secure", "08_security.ipynb": "secure",
          "test_lifecycle.py": "local-brokers", "test_reliability.py": "local-brokers"}
COST = {"cluster": 330, "test_browser.py": 230, "local-brokers": 170, "04b_consumer_groups.ipynb": 140,
        "05b_log_lifecycle.ipynb": 130,
        "09_performance.ipynb": 125, "test_startup.py": 110, "12_task_queue.ipynb": 90,
        "11_log_aggregation.ipynb": 85, "00b_live_lab.ipynb": 90, "13_web_analytics.ipynb": 80, "secure": 75,
        "10_streaming.ipynb": 75, "16_ad_hoc_analytics.ipynb": 75, "test_site.py": 75, "14_replication.ipynb": 55,
        "02_consumers.ipynb": 50, "07_patterns.ipynb": 50, "test_lag_history.py": 45,
        "test_exercise_checks.py": 40, "06_errors.ipynb": 35, "test_read.py": 35}


def group_of(nodeid: str) -> str:
    name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return GROUPS.get(name, name)


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return ByGroup(config, log)


def _longest_first(items: list) -> None:
    def cost(item) -> int:
        return COST.get(group_of(item.nodeid), 30 if item.get_closest_marker("integration") else 5)
    first: dict = {}
    for i, item in enumerate(items):
        first.setdefault(group_of(item.nodeid), i)
    items.sort(key=lambda item: (-cost(item), first[group_of(item.nodeid)]))   # stable: cells keep order


def pytest_collection_modifyitems(session, config, items):
    if any(item.path.suffix == ".ipynb" for item in items):
        items[:] = _with_second_runs(items)
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.integration)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _longest_first(items)
    if any(_needs_broker(i) for i in items) and not config.option.collectonly:
        from kafkalab.broker.local import LocalBroker

        broker = LocalBroker(home=_session["home"] / "session", port=0)
        broker.up(timeout=180)
        _session["broker"] = broker
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap


def pytest_sessionfinish(session, exitstatus):
    """Stop every broker this process started. Here, not at unconfigure: an xdist worker reports
    "finished" right after this hook, and its controller may end it before unconfigure is done."""
    broker = _session.pop("broker", None)
    if broker is not None:
        broker.down()
    if "home" in _session:  # notebooks or tests may have started the secure broker or the cluster
        from kafkalab.broker.cluster import Cluster
        from kafkalab.broker.secure import SecureBroker
        SecureBroker(home=_session["home"] / "default").down()
        Cluster(home=_session["home"] / "default").down()
        from kafkalab.laghistory import stop_watch
        stop_watch(home=_session["home"] / "default")   # a lag watcher a notebook left running


def pytest_unconfigure(config):
    if "home" in _session:
        from kafkalab.broker.jvmcache import wait_for_builds
        try:
            wait_for_builds()        # a broker's clean stop may have started building an AOT cache in it
        except TimeoutError as e:
            print(f"kafkalab: {e}")
        shutil.rmtree(_session.pop("home"), ignore_errors=True)  # brokers' data, logs, secrets


CHROMIUM = os.environ.get("KAFKALAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's package) driven by Playwright, for the browser tests."""
    if not CHROMIUM:
        pytest.skip("no Chromium: install Debian's `chromium` package (.ci/run does) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the test extra)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def broker():
    if "broker" not in _session:
        pytest.fail("the session broker was not started")
    return _session["broker"]


@pytest.fixture(scope="session")
def lab_home():
    return _session["home"]
