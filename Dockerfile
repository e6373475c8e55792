# The DataPerf speech submission container: runs the selection stage only.
#
#   docker build -t dataperf-speech-submission:latest .
#   docker run --rm -u $(id -u):$(id -g) --network none -v $(pwd)/workdir:/workdir \
#       dataperf-speech-submission:latest --input_samples /workdir/samples.pb --outdir=/workdir
#
# writes /workdir/train.npz. The image holds the project's base dependencies only
# (numpy, protobuf, scikit-learn, tqdm, pinned by constraints.txt) and the packages
# selection needs (protos, selection, eval): no TensorFlow, no audio stack.
# See docs/CONTAINER.md, including how to build it with podman and a local base image
# on machines that cannot reach a container registry.

# Any image with Python 3.11 or 3.12 and the `venv` module will do (the project
# supports both). The default stays 3.11; a 3.12 base was checked too (docs/CONTAINER.md).
ARG BASE_IMAGE=python:3.11-slim

# ---- build stage: a virtual environment with the project installed (not editable) ----
FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what `pip install .` needs for the three packages the container runs.
# setuptools' package discovery installs whichever of the listed packages exist,
# so the TensorFlow-side packages (embedding_model, dataset_builder, corpus) stay out.
COPY pyproject.toml constraints.txt README.md ./
COPY protos/ protos/
COPY selection/ selection/
COPY eval/ eval/

# No extras: exactly the [project] dependencies, at the versions in constraints.txt.
# pip byte-compiles what it installs, so nothing needs writing at run time.
# The third-party packages' own test suites (about 60 MB, a fifth of the venv) are
# never imported: drop them, then import the CLI, eval and every selection algorithm,
# so a dependency missing from [project] dependencies fails the build, not a run.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt . \
 && site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
 && find "$site" -mindepth 2 -depth -type d -name tests -exec rm -rf {} + \
 && /opt/venv/bin/python -c "import importlib, pkgutil, eval, selection.main, \
selection.implementations as impl; [importlib.import_module(m.name) for m in \
pkgutil.iter_modules(impl.__path__, impl.__name__ + '.')]"

# ---- runtime stage: the base image plus the virtual environment, one layer ----
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="dataperf-speech-submission" \
      org.opencontainers.image.description="DataPerf speech selection stage: samples.pb -> train.npz" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=build /opt/venv /opt/venv

# Runs as any uid (`-u $(id -u):$(id -g)`), usually one with no passwd entry and no
# home: point HOME and TMPDIR at /tmp (world-writable), never write bytecode, and do
# not put the working directory on sys.path (PYTHONSAFEPATH, Python >= 3.11), so a
# file in the mounted /workdir can never shadow the installed packages.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONSAFEPATH=1 \
    PYTHONUNBUFFERED=1

WORKDIR /workdir
ENTRYPOINT ["python", "-m", "selection.main"]
