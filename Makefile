# The two promises of the README: `make lab` and `make test`, on a fresh machine.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: lab test test-fast setup bench site clean
lab: $(STAMP)
	$(VENV)/bin/kafkalab lab

test: $(STAMP)   # two workers: the suite mostly waits on brokers and kernels (see conftest.py)
	$(VENV)/bin/python -m pytest -n 2 --dist loadscope --no-loadscope-reorder

test-fast: $(STAMP)   # the unit tests: no broker, no notebook, well under a minute
	$(VENV)/bin/python -m pytest tests/unit

setup: $(STAMP)

# uv installs the packages, compiled to bytecode as pip does (without it every kernel and test process
# compiles its imports again when PYTHONDONTWRITEBYTECODE is set), in about 35 s instead of pip's 60-75;
# it is given PIP_INDEX_URL. pip does it when uv cannot (no uv wheel, an index set in pip.conf only).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "kafkalab needs Python 3.10+")'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	($(VENV)/bin/python -m pip install --quiet uv && \
	 UV_DEFAULT_INDEX="$${PIP_INDEX_URL:-https://pypi.org/simple}" \
	 $(VENV)/bin/python -m uv pip install --quiet --compile-bytecode --python $(VENV)/bin/python -e '.[test]') || \
	($(VENV)/bin/python -m pip install --quiet --upgrade pip && \
	 $(VENV)/bin/python -m pip install --quiet -e '.[test]')
	touch $(STAMP)

site: $(STAMP)
	$(VENV)/bin/kafkalab site --out site

bench: $(STAMP)
	$(VENV)/bin/python bench/broker_startup.py

clean:
	rm -rf $(VENV) build *.egg-info
