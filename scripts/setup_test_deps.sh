#!/usr/bin/env bash
# Installs what the integration tests look for but never install themselves, idempotently (a second run only
# checks, in well under a second). scripts/test.sh runs it before `cargo test`.
#
#   prometheus, promtool   Debian's prometheus package (apt-get, as root): tests/observability.rs runs promtool
#                          on the shipped configuration and rules and a real Prometheus server against a learner
#   target/k8s-validate-venv
#                          a virtual environment with kubernetes-validate and PyYAML (pip, from PyPI):
#                          tests/docker.rs validates the rendered Kubernetes manifests against the API schemas
#   target/nir-venv        a virtual environment with nir (the Neuromorphic Intermediate Representation) and NumPy
#                          (pip, from PyPI): tests/nir_export.rs reads `spikerl export --format nir` files with
#                          nir.read and simulates them
#   target/tb-venv         a virtual environment with tensorboard (pip, from PyPI): tests/tensorboard.rs reads the
#                          run folders' tb/ event files with TensorBoard's own event reader
#   libOSMesa.so.8, ffmpeg Debian's libosmesa6 and ffmpeg (apt-get, as root): MuJoCo renders videos off screen
#                          through OSMesa (`spikerl eval --video`, `train --video-every`); ffmpeg encodes MP4
#   slurmctld, slurmd, sbatch, munged
#                          Debian's slurm-wlm and munge (apt-get, as root): tests/slurm.rs starts a one-node Slurm
#                          cluster of its own in a temporary folder (its own MUNGE key and socket, no system
#                          services touched) and runs a sweep on it with --backend slurm
#   target/docker/debs/prometheus_*.deb
#                          where Docker is installed: the package deploy/build-images.sh --offline puts into the
#                          Prometheus image, fetched now so the Docker tests need no package mirror
#
# What cannot be installed (no root, no apt-get, no network) is reported and left out: the tests that need it
# skip loudly, or fail where SPIKERL_REQUIRE lists it (CI). SPIKERL_TEST_DEPS=0 skips this script.
set -uo pipefail
cd "$(dirname "$0")/.."

log() { echo "[setup-test-deps] $*" >&2; }

if [ "${SPIKERL_TEST_DEPS:-1}" = 0 ]; then
    log "SPIKERL_TEST_DEPS=0: nothing checked or installed"
    exit 0
fi

is_root() { [ "$(id -u)" = 0 ]; }

# apt-get with a fresh package list only when the cached one does not know the package.
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
        { timeout 600 apt-get update -q >/dev/null && timeout 600 apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}

# --- Prometheus server and promtool -----------------------------------------------------------------------
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    :
elif ! command -v apt-get >/dev/null; then
    log "prometheus/promtool missing and no apt-get here: the Prometheus tests will skip (or fail if required)"
elif ! is_root; then
    log "prometheus/promtool missing; installing Debian's prometheus package needs root: the Prometheus tests will skip (or fail if required)"
else
    log "installing Debian's prometheus package (prometheus, promtool)"
    if apt_install prometheus && command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        log "installed $(prometheus --version 2>&1 | head -1)"
    else
        log "apt-get install prometheus failed (no package mirror reachable?): the Prometheus tests will skip (or fail if required)"
    fi
fi

# --- kubernetes-validate ---------------------------------------------------------------------------------
K8S_VERSION=1.37.0
VENV=target/k8s-validate-venv
if [ ! -e "$VENV/.ready-$K8S_VERSION" ]; then
    log "making $VENV (kubernetes-validate==$K8S_VERSION, PyYAML)"
    rm -rf "$VENV"
    mkdir -p target
    if python3 -m venv "$VENV" &&
        "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check \
            "kubernetes-validate==$K8S_VERSION" "PyYAML>=6" &&
        "$VENV/bin/python3" -c "import kubernetes_validate, yaml"; then
        touch "$VENV/.ready-$K8S_VERSION"
    else
        rm -rf "$VENV"
        log "could not make $VENV (python3 -m venv or PyPI unavailable): the Kubernetes manifest test will skip (or fail if required)"
    fi
fi

# --- nir (NIR export test) --------------------------------------------------------------------------------
NIR_VERSION=1.0.8
NIR_VENV=target/nir-venv
if [ ! -e "$NIR_VENV/.ready-$NIR_VERSION" ]; then
    log "making $NIR_VENV (nir==$NIR_VERSION, numpy)"
    rm -rf "$NIR_VENV"
    mkdir -p target
    if python3 -m venv "$NIR_VENV" &&
        "$NIR_VENV/bin/python3" -m pip install --quiet --disable-pip-version-check \
            "nir==$NIR_VERSION" numpy &&
        "$NIR_VENV/bin/python3" -c "import nir, numpy"; then
        touch "$NIR_VENV/.ready-$NIR_VERSION"
    else
        rm -rf "$NIR_VENV"
        log "could not make $NIR_VENV (python3 -m venv or PyPI unavailable): the NIR export test will skip (or fail if required)"
    fi
fi

# --- tensorboard (TensorBoard event files test) ---------------------------------------------------------
TB_VERSION=2.21.0
TB_VENV=target/tb-venv
if [ ! -e "$TB_VENV/.ready-$TB_VERSION" ]; then
    log "making $TB_VENV (tensorboard==$TB_VERSION)"
    rm -rf "$TB_VENV"
    mkdir -p target
    if python3 -m venv "$TB_VENV" &&
        "$TB_VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "tensorboard==$TB_VERSION" &&
        "$TB_VENV/bin/python3" -c "import tensorboard.backend.event_processing.event_accumulator"; then
        touch "$TB_VENV/.ready-$TB_VERSION"
    else
        rm -rf "$TB_VENV"
        log "could not make $TB_VENV (python3 -m venv or PyPI unavailable): the TensorBoard test will skip (or fail if required)"
    fi
fi

# --- OSMesa and ffmpeg (videos) ---------------------------------------------------------------------------
if ldconfig -p 2>/dev/null | grep -q 'libOSMesa\.so\.8' && command -v ffmpeg >/dev/null; then
    :
elif ! command -v apt-get >/dev/null; then
    log "libOSMesa.so.8 or ffmpeg missing and no apt-get here: the video tests will skip (or fail if required)"
elif ! is_root; then
    log "libOSMesa.so.8 or ffmpeg missing; installing Debian's libosmesa6 and ffmpeg needs root: the video tests will skip (or fail if required)"
else
    log "installing Debian's libosmesa6 and ffmpeg"
    if apt_install libosmesa6 ffmpeg && ldconfig -p | grep -q 'libOSMesa\.so\.8' && command -v ffmpeg >/dev/null; then
        log "installed libOSMesa.so.8 and $(ffmpeg -version 2>&1 | head -1)"
    else
        log "apt-get install libosmesa6 ffmpeg failed (no package mirror reachable?): the video tests will skip (or fail if required)"
    fi
fi

# --- Slurm and MUNGE (tests/slurm.rs) -------------------------------------------------------------------
# The packages' own services are not started or needed: the test runs the daemons itself.
slurm_ready() {
    for tool in munged slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || return 1
    done
}
if slurm_ready; then
    :
elif ! command -v apt-get >/dev/null; then
    log "Slurm or MUNGE missing and no apt-get here: the Slurm test will skip (or fail if required)"
elif ! is_root; then
    log "Slurm or MUNGE missing; installing Debian's slurm-wlm and munge needs root: the Slurm test will skip (or fail if required)"
else
    log "installing Debian's slurm-wlm and munge"
    if apt_install slurm-wlm munge && slurm_ready; then
        log "installed $(/usr/sbin/slurmctld -V 2>&1 | head -1) and $(/usr/sbin/munged -V 2>&1 | head -1)"
    else
        log "apt-get install slurm-wlm munge failed (no package mirror reachable?): the Slurm test will skip (or fail if required)"
    fi
fi

# --- the Prometheus package for the offline images --------------------------------------------------------
DEBS=target/docker/debs
if command -v docker >/dev/null && command -v apt-get >/dev/null && ! ls "$DEBS"/prometheus_*.deb >/dev/null 2>&1; then
    log "apt-get download prometheus into $DEBS (deploy/build-images.sh --offline)"
    mkdir -p "$DEBS"
    (cd "$DEBS" && { apt-get download -q prometheus >/dev/null 2>&1 ||
        { is_root && apt-get update -q >/dev/null && apt-get download -q prometheus >/dev/null; }; }) ||
        log "could not download Debian's prometheus package: deploy/build-images.sh will try again itself"
fi
exit 0
