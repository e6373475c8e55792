# The README's two commands: `make demo` (the main job) and `make test`.
# Each creates the virtual environment and installs what it needs; `make demo`
# installs only the pipeline (no Beam, no ONNX, no torch), `make test` adds the
# extras the tests exercise. Neither installs torch: the wav2vec2 backend is an
# opt-in extra (`make install EXTRAS=all,wav2vec2,test`, CPU wheel of torch first).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO_EXTRAS ?= pipeline
EXTRAS      ?= all,test
comma  := ,
stamp   = $(VENV)/.installed-$(subst $(comma),-,$(1))
# Byte-code is compiled on first import instead of for every file of every package.
PIP_INSTALL := $(PY) -m pip install --quiet --no-compile -c constraints.txt

.PHONY: install demo test check-system clean

$(PY):
	@$(PYTHON) --version >/dev/null 2>&1 || { echo "make: $(PYTHON) not found: apt-get install python3 python3-venv (Python 3.11), or run make PYTHON=/path/to/python3.11" >&2; exit 3; }
	$(PYTHON) -m venv $(VENV) || { echo "make: could not create $(VENV): apt-get install python3-venv" >&2; rm -rf $(VENV); exit 3; }
	$(PY) -m pip install --quiet --upgrade pip

$(call stamp,$(DEMO_EXTRAS)): pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e ".[$(DEMO_EXTRAS)]"
	touch $@

$(call stamp,$(EXTRAS)): pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e ".[$(EXTRAS)]"
	touch $@

install: $(call stamp,$(EXTRAS))

demo: $(call stamp,$(DEMO_EXTRAS))
	$(PY) -m dataset_builder.demo

test: $(call stamp,$(EXTRAS))
	$(PY) -m pytest -q

# What the machine lacks for the tests (speech engines, libopus), as one apt-get line
# (standard library only: needs no virtualenv).
check-system:
	$(PYTHON) -m dataset_builder.system_check

clean:
	rm -rf $(VENV) build *.egg-info
