#!/usr/bin/env bash
# Build the submission container with podman and run it on a small samples.pb.
#
# For machines with no Docker engine and no reachable container registry (the
# recipe in docs/CONTAINER.md). Needs root: it installs podman, runc and debootstrap
# with apt-get if they are missing, makes a local Debian base image with Python
# (cached as localhost/debian-python:bookworm), builds the image from the
# repository's Dockerfile, writes a random samples.pb with the project's own API,
# runs the container as a non-root uid with no network and a read-only root
# filesystem, and checks train.npz: present, owned by that uid, the expected arrays,
# at most --train_size rows, every row a genuine row of the pool.
#
# Usage: scripts/container-smoke.sh [--rebuild-base] [--keep]
#   --rebuild-base  make the local base image again even if it exists
#   --keep          keep the temporary work directory (printed at the end)
# Environment (all optional):
#   PYTHON          host interpreter with the project installed (default: .venv/bin/python)
#   IMAGE           tag to build (default: dataperf-speech-submission:latest)
#   BASE_IMAGE      base image (default: localhost/debian-python:bookworm, made locally;
#                   any other value is used as is, e.g. python:3.11-slim from a registry)
#   RUN_UID/RUN_GID the ids to run the container as (default: 1000:1000)
#   TRAIN_SIZE      --train_size passed to selection (default: 25)
#
# Prints progress, then one summary line; on any failure, one line starting with
# "container-smoke: FAIL:" and a non-zero exit.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
IMAGE=${IMAGE:-dataperf-speech-submission:latest}
LOCAL_BASE=localhost/debian-python:bookworm
BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}
RUN_UID=${RUN_UID:-1000}
RUN_GID=${RUN_GID:-1000}
TRAIN_SIZE=${TRAIN_SIZE:-25}
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

rebuild_base=0
keep=0
for arg in "$@"; do
    case "$arg" in
        --rebuild-base) rebuild_base=1 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "container-smoke: FAIL: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

fail() {
    echo "container-smoke: FAIL: $*" >&2
    exit 1
}
say() { echo "container-smoke: $*"; }
# Last non-empty line of a log, for a one-line failure message.
last_line() { grep -v '^[[:space:]]*$' "$1" | tail -n 1 | cut -c1-300; }

[[ $(id -u) -eq 0 ]] || fail "must run as root (apt-get, debootstrap and rootful podman)"
[[ $RUN_UID =~ ^[0-9]+$ && $RUN_GID =~ ^[0-9]+$ && $RUN_UID -ne 0 ]] \
    || fail "RUN_UID/RUN_GID must be numeric and RUN_UID non-zero (got $RUN_UID:$RUN_GID)"
[[ $TRAIN_SIZE =~ ^[1-9][0-9]*$ ]] || fail "TRAIN_SIZE must be a positive integer (got $TRAIN_SIZE)"
[[ -x $PYTHON ]] || fail "no host interpreter at $PYTHON (run 'make install' or set PYTHON)"

TMP=$(mktemp -d /tmp/container-smoke.XXXXXX)
cleanup() {
    local rc=$?
    if [[ $keep -eq 1 || $rc -ne 0 ]]; then
        echo "container-smoke: work directory kept: $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

# ---- 1. tools ---------------------------------------------------------------------
missing=()
for tool in podman runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]} (apt-get)"
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y podman runc debootstrap; } \
        >"$TMP/apt.log" 2>&1 || fail "apt-get install podman runc debootstrap failed: $(last_line "$TMP/apt.log")"
fi

# podman's default ulimits are refused in this sandbox; vfs storage, runc and
# cgroupfs are what works here (docs/CONTAINER.md).
printf '[containers]\ndefault_ulimits = []\n' >"$TMP/containers.conf"
export CONTAINERS_CONF=$TMP/containers.conf
P=(podman --storage-driver vfs --runtime runc --cgroup-manager=cgroupfs)

# ---- 2. local base image (cached) ----------------------------------------------------
if [[ $BASE_IMAGE == "$LOCAL_BASE" ]]; then
    if [[ $rebuild_base -eq 0 ]] && "${P[@]}" image exists "$LOCAL_BASE"; then
        say "base image $LOCAL_BASE exists, not rebuilding it"
    else
        say "making base image $LOCAL_BASE with debootstrap ($DEBIAN_SUITE, minbase + python3)"
        old_base=$("${P[@]}" image inspect --format '{{.Id}}' "$LOCAL_BASE" 2>/dev/null || true)
        rootfs=$TMP/rootfs
        debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
            "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$TMP/debootstrap.log" 2>&1 \
            || fail "debootstrap failed: $(last_line "$TMP/debootstrap.log")"
        # The package index is reached through a TLS proxy whose CA is in the host's
        # bundle: give the image the same bundle and point pip at it.
        cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
        printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
        # Drop what a runtime image never needs (downloaded .debs, apt lists, docs,
        # man pages, translations): about half of the tree. Like Debian's own slim
        # images, keep each package's copyright file.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
            "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/man/* \
            "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
        find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
        find "$rootfs/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
        tar -C "$rootfs" -c . | "${P[@]}" import - "$LOCAL_BASE" >"$TMP/import.log" 2>&1 \
            || fail "podman import of the base image failed: $(last_line "$TMP/import.log")"
        rm -rf "$rootfs"
    fi
fi

# ---- 3. build ---------------------------------------------------------------------
# --layers=false: with vfs every cached layer is a full copy of the tree, so caching
# each instruction costs more time and disk than it saves; the build stage is not kept.
say "building $IMAGE from $REPO (base $BASE_IMAGE)"
previous=$("${P[@]}" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
t0=$(date +%s)
"${P[@]}" build --isolation chroot --layers=false --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    -t "$IMAGE" "$REPO" >"$TMP/build.log" 2>&1 \
    || fail "image build failed (log $TMP/build.log): $(last_line "$TMP/build.log")"
build_s=$(($(date +%s) - t0))
current=$("${P[@]}" image inspect --format '{{.Id}}' "$IMAGE") || fail "cannot inspect the built image $IMAGE"
# The image this tag pointed to before is now untagged: remove it (it is a full copy
# under vfs); podman refuses, and it stays, if something still uses it.
# Likewise a base image replaced by --rebuild-base, once nothing is built on it.
for stale in "$previous" "${old_base:-}"; do
    if [[ -n $stale && $stale != "$current" ]]; then
        "${P[@]}" rmi "$stale" >/dev/null 2>&1 || true
    fi
done
size_bytes=$("${P[@]}" image inspect --format '{{.Size}}' "$IMAGE") \
    || fail "cannot inspect the built image $IMAGE"
size_mb=$((size_bytes / 1000000))
say "built in ${build_s}s, image size ${size_mb} MB"

# ---- 4. a small samples.pb written with the project's API ---------------------------
work=$TMP/workdir
mkdir -p "$work"
"$PYTHON" - "$work/samples.pb" >"$TMP/samples.log" 2>&1 <<'EOF' \
    || fail "writing samples.pb with protos.write_samples failed: $(last_line "$TMP/samples.log")"
import sys

import numpy as np

import protos

rng = np.random.default_rng(20241125)
dim = 32
targets = ["left", "off", "yes"]          # sorted, as the metadata requires
nontarget_words = ["bird", "house", "tree", "water"]
per_target, per_nontarget_word = 30, 20

ids, types, words, vectors = [], [], [], []
for word, kind, count in (
    [(w, protos.TARGET, per_target) for w in targets]
    + [(w, protos.NONTARGET, per_nontarget_word) for w in nontarget_words]
):
    centre = rng.normal(0.0, 3.0, dim)
    for i in range(count):
        ids.append(f"{word}/smoke_{i:04d}.opus")
        types.append(kind)
        words.append(word)
        vectors.append(centre + rng.normal(0.0, 1.0, dim))

sample_set = protos.SampleSet(
    ids=np.array(ids, dtype=str),
    sample_types=np.array(types, dtype=np.int32),
    keywords=np.array(words, dtype=str),
    embeddings=np.array(vectors, dtype=np.float32),
    metadata=protos.DatasetMetadata(
        language="en",
        target_keywords=targets,
        backend="random",
        embedding_dim=dim,
        model_id="container-smoke",
        role="samples",
        params={"seed": "20241125"},
    ),
)
protos.write_samples(sys.argv[1], sample_set)
EOF
chown -R "$RUN_UID:$RUN_GID" "$work"

# ---- 5. run -------------------------------------------------------------------------
# The seed README's command, plus --read-only (and no tmpfs): proves the container
# writes nothing outside /workdir when run as an arbitrary uid with no network.
say "running $IMAGE as $RUN_UID:$RUN_GID, --network none, read-only root, --train_size $TRAIN_SIZE"
t0=$(date +%s)
"${P[@]}" run --rm --network none --read-only --read-only-tmpfs=false \
    -u "$RUN_UID:$RUN_GID" -v "$work:/workdir" "$IMAGE" \
    --input_samples /workdir/samples.pb --outdir=/workdir --train_size "$TRAIN_SIZE" \
    >"$TMP/run.log" 2>&1 || fail "container run failed (log $TMP/run.log): $(last_line "$TMP/run.log")"
run_s=$(($(date +%s) - t0))

# ---- 6. checks ------------------------------------------------------------------------
out=$work/train.npz
[[ -f $out ]] || fail "container exited 0 but wrote no /workdir/train.npz (log $TMP/run.log)"
owner=$(stat -c '%u:%g' "$out")
[[ $owner == "$RUN_UID:$RUN_GID" ]] || fail "train.npz is owned by $owner, expected $RUN_UID:$RUN_GID"
stray=$(find "$work" -mindepth 1 ! -name samples.pb ! -name train.npz -printf '%P ')
[[ -z $stray ]] || fail "the run left unexpected files in /workdir: $stray"

rows=$("$PYTHON" - "$work/samples.pb" "$out" "$TRAIN_SIZE" 2>"$TMP/check.log" <<'EOF'
import sys

import numpy as np

import protos


def bad(message):
    print(message, file=sys.stderr)
    sys.exit(1)


pool = protos.read_samples(sys.argv[1])
train_size = int(sys.argv[3])
with np.load(sys.argv[2], allow_pickle=False) as npz:
    missing = {"train_x", "train_y", "train_ids", "label_names"} - set(npz.files)
    if missing:
        bad(f"train.npz lacks {sorted(missing)} (has {sorted(npz.files)})")
    x, y = npz["train_x"], npz["train_y"]
    ids, names = npz["train_ids"], npz["label_names"]

dim = pool.embeddings.shape[1]
if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != dim:
    bad(f"train_x is {x.dtype} {x.shape}, expected float32 [M, {dim}]")
if not 0 < len(x) <= train_size:
    bad(f"train_x has {len(x)} rows, expected 1..{train_size}")
if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x),):
    bad(f"train_y is {y.dtype} {y.shape}, expected int [{len(x)}]")
if ids.shape != (len(x),) or len(set(ids.tolist())) != len(ids):
    bad(f"train_ids has shape {ids.shape} or duplicates, expected {len(x)} unique ids")
expected_targets = sorted(pool.metadata.target_keywords)
if len(names) != len(expected_targets) + 1 or list(names[1:]) != expected_targets:
    bad(f"label_names is {list(names)}, expected nontarget then {expected_targets}")
if y.min() < 0 or y.max() > len(expected_targets):
    bad(f"train_y values {sorted(set(y.tolist()))} outside 0..{len(expected_targets)}")
row_of = {sample_id: i for i, sample_id in enumerate(pool.ids.tolist())}
unknown = [i for i in ids.tolist() if i not in row_of]
if unknown:
    bad(f"{len(unknown)} selected ids are not in samples.pb, e.g. {unknown[0]!r}")
rows = np.array([row_of[i] for i in ids.tolist()])
if not np.array_equal(x, pool.embeddings[rows]):
    bad("train_x rows differ from the pool's vectors for the selected ids")
for sample_id, label, row in zip(ids.tolist(), y.tolist(), rows):
    is_target = pool.sample_types[row] == protos.TARGET
    want = expected_targets.index(pool.keywords[row]) + 1 if is_target else 0
    if label != want:
        bad(f"{sample_id} has label {label}, expected {want}")
print(len(x))
EOF
) || fail "train.npz check failed: $(last_line "$TMP/check.log")"

say "OK: image $IMAGE ${size_mb} MB, build ${build_s}s, run ${run_s}s;" \
    "train.npz has $rows rows (<= $TRAIN_SIZE), owned by $owner"
