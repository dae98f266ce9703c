"""How `make test` splits the suite over two workers (conftest.py): files that share a broker run
in one worker, a notebook's cells in one kernel, the longest units first."""
import conftest


def test_files_that_share_a_broker_are_one_unit_of_work():
    assert conftest.group_of("notebooks/15_failure_lab.ipynb::Cell 3 (run 2)") == \
        conftest.group_of("tests/integration/test_cluster.py::test_status_json_lists_every_node")
    assert conftest.group_of("notebooks/08_security.ipynb::Cell 0") == \
        conftest.group_of("tests/integration/test_secure.py::test_the_listener_is_tls_with_the_lab_ca")
    assert conftest.group_of("tests/integration/test_lifecycle.py::test_x") == \
        conftest.group_of("tests/integration/test_reliability.py::test_y")


def test_every_other_file_is_its_own_unit():
    assert conftest.group_of("notebooks/02_consumers.ipynb::Cell 1") == "02_consumers.ipynb"
    assert conftest.group_of("notebooks/02_consumers.ipynb::threads after run 1") == "02_consumers.ipynb"
    assert conftest.group_of("tests/unit/test_windows.py::test_a[1::2]") == "test_windows.py"
    assert conftest.group_of("tests/integration/test_live.py::test_z") != conftest.group_of(
        "tests/integration/test_browser.py::test_z")
