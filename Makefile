# The two commands of the README: `make run` starts the app, `make test` runs the whole suite.
# Both create .venv on first use and (re)install requirements only when those files change.
PY      := .venv/bin/python
STAMPS  := .venv/.stamps
PORT    ?= 8501

.PHONY: run test test-fast lint pretrain bench bench-ui clean

$(PY):
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip

$(STAMPS)/app: requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@# build the LRN/SRU C++ kernels once (cached; about 30 s), so no page waits for them on first use
	$(PY) -c "from drnn_demo.models import kernels; kernels.available()"
	mkdir -p $(STAMPS) && touch $@

$(STAMPS)/dev: requirements-dev.txt $(STAMPS)/app
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(STAMPS)/app
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
		--browser.gatherUsageStats false

test: $(STAMPS)/dev
	$(PY) -m ruff check .
	.venv/bin/lint-imports --no-cache
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The developer's loop: everything but the slow and the browser tests.
test-fast: $(STAMPS)/dev
	$(PY) -m ruff check .
	.venv/bin/lint-imports --no-cache
	$(PY) -m pytest -q -m "not slow and not browser" $(PYTEST_ARGS)

lint: $(STAMPS)/dev
	$(PY) -m ruff check .
	.venv/bin/lint-imports --no-cache

pretrain: $(STAMPS)/app
	$(PY) -m drnn_demo pretrain

bench: $(STAMPS)/app
	$(PY) -m drnn_demo.bench

# Slider and page-load latency of the app as ratios to a bare Streamlit page, in Chromium (Playwright is a dev
# requirement). Options: make bench-ui BENCH_UI_ARGS="--repeats 7 --while-training --json bench-ui.json"
bench-ui: $(STAMPS)/dev
	$(PY) -m drnn_demo.bench ui $(BENCH_UI_ARGS)

clean:
	rm -rf .venv .pytest_cache .ruff_cache .hypothesis
