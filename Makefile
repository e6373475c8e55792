# The README's two commands: `make demo` (the main job) and `make test`.
# Each creates the virtual environment and installs what it needs; `make demo`
# installs only the pipeline (no Beam, no ONNX, no torch), `make test` adds the
# extras the tests exercise. Neither installs torch: the wav2vec2 backend is an
# opt-in extra (`make install EXTRAS=all,wav2vec2,test`, CPU wheel of torch first).
#
# Which Python (3.11 and 3.12 are supported):
# - PYTHON=... (command line or environment) is used as given; a $(VENV) made by
#   another Python version is then made anew, with a message saying so.
# - Otherwise an existing $(VENV) keeps the Python it was made with (`make clean`,
#   or PYTHON=..., to change it), and a new one is made with the first of python3.11,
#   python3.12 that runs here.
# Every command says which Python it runs.
VENV   ?= .venv
PY     := $(VENV)/bin/python
VENV_CFG := $(VENV)/pyvenv.cfg
SUPPORTED_PYTHONS := 3.11 3.12
CANDIDATE_PYTHONS := $(addprefix python,$(SUPPORTED_PYTHONS))
DEMO_EXTRAS ?= pipeline
EXTRAS      ?= all,test
# Extra pytest arguments, e.g. PYTEST_ARGS='-m second_python' (the subset .ci/run
# also runs under the second Python).
PYTEST_ARGS ?=
comma  := ,
stamp   = $(VENV)/.installed-$(subst $(comma),-,$(1))
# Byte-code is compiled on first import instead of for every file of every package.
PIP_INSTALL := $(PY) -m pip install --quiet --no-compile -c constraints.txt

# "3.11" for an interpreter that runs, nothing otherwise (a pyenv shim for a version
# that is installed but not selected exits non-zero: it counts as absent).
py_minor = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)

# The choice is made only for goals that need a Python (not for `make clean`).
ifneq ($(if $(MAKECMDGOALS),$(filter-out clean,$(MAKECMDGOALS)),default),)
VENV_MINOR := $(if $(wildcard $(PY)),$(call py_minor,$(PY)))
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach p,$(CANDIDATE_PYTHONS),$(if $(filter $(p:python%=%),$(call py_minor,$(p))),$(p))))
PYTHON_WHY := the first of $(CANDIDATE_PYTHONS) that runs here
PYTHON_MINOR := $(PYTHON:python%=%)
ifneq ($(filter $(VENV_MINOR),$(SUPPORTED_PYTHONS)),)
# An existing environment of a supported version is kept as it is.
ifneq ($(VENV_MINOR),$(PYTHON_MINOR))
KEPT_NOTE := $(VENV) was made with Python $(VENV_MINOR) and is kept ($(or $(PYTHON),no python3.11 or python3.12) on PATH: make clean, or PYTHON=..., to change)
endif
else ifeq ($(PYTHON),)
$(error neither python3.11 nor python3.12 runs here: install one (Debian/Ubuntu: apt-get install python3 python3-venv), or run make PYTHON=/path/to/python3.12)
else ifneq ($(wildcard $(VENV)),)
REMAKE_VENV := $(VENV) does not run a supported Python ($(or $(VENV_MINOR),broken)): making it anew
endif
else
PYTHON_WHY := PYTHON=$(PYTHON)
PYTHON_MINOR := $(call py_minor,$(PYTHON))
ifeq ($(PYTHON_MINOR),)
$(error PYTHON=$(PYTHON) does not run: give the path of a Python 3.11 or 3.12)
else ifeq ($(filter $(PYTHON_MINOR),$(SUPPORTED_PYTHONS)),)
$(error PYTHON=$(PYTHON) is Python $(PYTHON_MINOR); this project supports Python 3.11 and 3.12)
else ifneq ($(wildcard $(VENV)),)
ifneq ($(VENV_MINOR),$(PYTHON_MINOR))
REMAKE_VENV := $(VENV) runs Python $(or $(VENV_MINOR),(broken)), PYTHON=$(PYTHON) is $(PYTHON_MINOR): making $(VENV) anew
endif
endif
endif
endif

# `python -V` of the environment, for the line each command prints first.
say_python = @echo "make: $(VENV) runs $$($(PY) -V 2>&1) ($$(readlink -f $(PY)))"$(if $(KEPT_NOTE),; echo "make: $(KEPT_NOTE)")

.PHONY: venv install demo test check-system clean FORCE

venv: $(VENV_CFG)
	$(say_python)

ifdef REMAKE_VENV
$(VENV_CFG): FORCE
endif
$(VENV_CFG):
	@$(if $(REMAKE_VENV),echo "make: $(REMAKE_VENV)";) \
	 if [ -e '$(VENV)' ] && [ ! -f '$(VENV_CFG)' ]; then \
	   echo "make: $(VENV) exists but is not a virtual environment: move it away, or choose another with VENV=..." >&2; exit 3; fi
	rm -rf '$(VENV)'
	@echo "make: making $(VENV) with $(PYTHON), $$($(PYTHON) -V 2>&1) ($(PYTHON_WHY))"
	$(PYTHON) -m venv $(VENV) || { echo "make: could not create $(VENV) with $(PYTHON): apt-get install python$(PYTHON_MINOR)-venv (or python3-venv)" >&2; rm -rf $(VENV); exit 3; }
	$(PY) -m pip install --quiet --upgrade pip

# A stamp depends on pyvenv.cfg: an environment made anew is newer than the stamps.
$(call stamp,$(DEMO_EXTRAS)): pyproject.toml constraints.txt $(VENV_CFG)
	$(PIP_INSTALL) -e ".[$(DEMO_EXTRAS)]"
	touch $@

$(call stamp,$(EXTRAS)): pyproject.toml constraints.txt $(VENV_CFG)
	$(PIP_INSTALL) -e ".[$(EXTRAS)]"
	touch $@

install: $(call stamp,$(EXTRAS))
	$(say_python)

demo: $(call stamp,$(DEMO_EXTRAS))
	$(say_python)
	$(PY) -m dataset_builder.demo

test: $(call stamp,$(EXTRAS))
	$(say_python)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# What the machine lacks for the tests (speech engines, libopus), as one apt-get line
# (standard library only: needs no virtualenv, any supported Python runs it).
check-system:
	$(or $(PYTHON),$(PY)) -m dataset_builder.system_check

clean:
	rm -rf $(VENV) build *.egg-info
