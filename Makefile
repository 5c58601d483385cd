# fabhub: `make run` serves the hub with demo data; `make test` runs the whole suite.
# Everything installs into .venv on first use; later runs reuse it (the stamp file
# changes only when pyproject.toml does).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export FABHUB_DATA_DIR ?= $(CURDIR)/var

.PHONY: run test test-fast test-postgres install lint bench bench-scale clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py rerender_markdown
	DEBUG=1 $(BIN)/python manage.py demo
	DEBUG=1 $(BIN)/python manage.py issue_credentials
	@echo "fabhub at http://127.0.0.1:$(PORT)/ (demo accounts in README.md)"
	# gunicorn rather than runserver: git pushes over 1 MB arrive chunked, which only a
	# production WSGI server de-chunks.
	# The demo lab's printer is a real OctoPrint with its Virtual Printer, driven through a
	# local lab agent, both started (and stopped) around the server by
	# scripts/with-demo-octoprint; DEMO_OCTOPRINT=0 skips them, DEMO_AGENT=0 drives it directly.
	DEBUG=1 HUB_PYTHON=$(BIN)/python DEMO_HUB_URL=http://127.0.0.1:$(PORT) scripts/with-demo-octoprint $(BIN)/gunicorn hub.wsgi:application --bind 127.0.0.1:$(PORT) \
		--workers 2 --threads 4 --timeout 600 --keep-alive 10 --access-logfile -

test: install lint
	bash scripts/ensure-test-tools
	DEBUG=1 $(BIN)/python manage.py check
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest

# The inner loop: the checks, then every test that starts no external server (no
# OctoPrint, Redis, second hub or Chromium). CI runs the whole `make test`.
test-fast: install lint
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# The suite again on a throw-away PostgreSQL server (scripts/with-postgres sets
# DATABASE_URL): the exclusion constraint and the 50-racer booking test run only there.
test-postgres: install
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest -m "not browser"

# Style, formatting, the import contracts (pyproject.toml) and types.
lint: install
	$(BIN)/ruff check hub designs machines fabhub_agent tests bench
	$(BIN)/ruff format --check hub designs machines fabhub_agent tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/history.py
	$(BIN)/python bench/commit.py
	$(BIN)/python bench/mirror.py
	$(BIN)/python bench/git_transfer.py
	$(BIN)/python bench/meshes.py
	$(BIN)/python bench/step.py
	$(BIN)/python bench/mesh_push.py
	$(BIN)/python bench/bookings.py
	$(BIN)/python bench/print_queue.py
	$(BIN)/python bench/zip_download.py
	$(BIN)/python bench/assemblies.py
	$(BIN)/python bench/archives.py
	$(BIN)/python bench/agents.py
	$(BIN)/python bench/where.py
	$(BIN)/python bench/page_diffs.py

# The scaled set-up under load and faults (scripts/scale-harness, docs/deploy.md "Sizing"):
# PostgreSQL, Redis, two gunicorn instances behind a proxy, two Celery workers and beat,
# locust for two minutes while parts are killed and restarted. CI runs its --short version.
bench-scale: install
	bash scripts/ensure-test-tools
	scripts/scale-harness

clean:
	rm -rf $(VENV) var
