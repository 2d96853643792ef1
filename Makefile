# The two commands a newcomer needs: `make run` and `make test`.
# Both create .venv and install everything the project needs first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export QT_QPA_PLATFORM ?= offscreen

.PHONY: run test bench screenshots bundles quit-cycles system-deps venv clean lint-layers lint-imports typecheck package package-test

run: $(STAMP)
	@if [ -z "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  echo "No display (DISPLAY/WAYLAND_DISPLAY unset): running the headless smoke test instead."; \
	  echo "On a desktop session, 'make run' opens the window."; \
	  QT_QPA_PLATFORM=offscreen $(PY) -m crm_desktop --smoke-test $(ARGS); \
	else \
	  env -u QT_QPA_PLATFORM $(PY) -m crm_desktop $(ARGS); \
	fi

# The import contracts of pyproject.toml ([tool.importlinter]) and the type check ([tool.mypy])
# first: a wrong-way import or a broken seam fails fast.
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

# Only the import contracts (docs/architecture.md).
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

# Only the type check (pyproject.toml [tool.mypy]; docs/architecture.md, "Typed seams").
typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/run_all.py

# Start and quit the real app 50 times under Xvfb; fails on any abort or hang.
quit-cycles: $(STAMP)
	$(PY) scripts/quit_cycles.py --runs $(or $(RUNS),50)

# The desktop views, then the admin console's pages (docs/images/console-*.png) taken by its browser tests.
screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) scripts/make_screenshots.py
	QT_QPA_PLATFORM=offscreen $(PY) scripts/screenshot_reporting.py
	CRM_SCREENSHOTS_DIR=$(CURDIR)/docs/images QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider \
	  tests/integration/test_console_e2e.py

system-deps:
	bash scripts/ensure-system-deps.sh

$(STAMP): pyproject.toml
	bash scripts/ensure-system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# The installed app (docs/packaging.md): PyInstaller comes from the `package` extra, for these targets only.
PKG_STAMP := $(VENV)/.installed-package-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

$(PKG_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,package]'
	touch $(PKG_STAMP)

# One-folder build in dist/crm-desktop/ (+ the Linux tarball); prints the folder's size.
package: $(PKG_STAMP)
	PY=$(PY) bash packaging/build.sh

# Build, then run the frozen smoke test with plugins written after the build.
package-test: $(PKG_STAMP)
	NO_TARBALL=1 $(PY) packaging/package_test.py

# Signed bundles of every first-party plugin (plugins/*/plugin.json) in build/bundles/:
# NAME-VERSION.crmplugin and its .sig. BUNDLE_KEY=PREFIX.key signs with your key (docs/plugin-admin.md);
# without it a development key is made once in build/bundle-key/ (never trust it in a real policy).
BUNDLE_KEY ?= build/bundle-key/dev.key
bundles: $(STAMP)
	@mkdir -p build/bundles build/bundle-home
	@if [ ! -f "$(BUNDLE_KEY)" ]; then \
	  if [ "$(BUNDLE_KEY)" != "build/bundle-key/dev.key" ]; then echo "BUNDLE_KEY: no key file $(BUNDLE_KEY)"; exit 2; fi; \
	  mkdir -p build/bundle-key && CRM_DESKTOP_HOME=$(CURDIR)/build/bundle-home $(PY) -m crm_desktop keys generate --out build/bundle-key/dev; \
	fi
	@set -e; for manifest in plugins/*/plugin.json; do \
	  dir=$$(dirname $$manifest); \
	  id=$$($(PY) -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["name"] + "-" + m["version"])' $$manifest); \
	  CRM_DESKTOP_HOME=$(CURDIR)/build/bundle-home $(PY) -m crm_desktop plugin pack $$dir -o build/bundles/$$id.crmplugin --force; \
	  CRM_DESKTOP_HOME=$(CURDIR)/build/bundle-home $(PY) -m crm_desktop plugin sign build/bundles/$$id.crmplugin --key $(BUNDLE_KEY); \
	done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache

# Old name of lint-imports.
lint-layers: lint-imports
