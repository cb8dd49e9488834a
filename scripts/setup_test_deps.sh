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

# debian_packages WHAT READY VERSION NEEDED_BY PACKAGE...: installs Debian's PACKAGEs (as root, with apt-get)
# unless the shell test READY already passes; WHAT names what is missing, VERSION is a command whose output
# says what was installed, NEEDED_BY the tests that skip (or fail, where required) without it.
debian_packages() {
    local what=$1 ready=$2 version=$3 needed_by=$4
    shift 4
    if eval "$ready"; then
        return 0
    elif ! command -v apt-get >/dev/null; then
        log "$what missing and no apt-get here: $needed_by will skip (or fail if required)"
    elif ! is_root; then
        log "$what missing; installing Debian's $* needs root: $needed_by will skip (or fail if required)"
    else
        log "installing Debian's $*"
        if apt_install "$@" && eval "$ready"; then
            log "installed $(eval "$version" 2>&1 | head -1)"
        else
            log "apt-get install $* failed (no package mirror reachable?): $needed_by will skip (or fail if required)"
        fi
    fi
}

# python_venv DIR VERSION IMPORTS NEEDED_BY REQUIREMENT...: a virtual environment in DIR with the pip
# REQUIREMENTs, made once per VERSION (the marker DIR/.ready-VERSION) and checked by importing IMPORTS.
python_venv() {
    local dir=$1 version=$2 imports=$3 needed_by=$4
    shift 4
    [ -e "$dir/.ready-$version" ] && return 0
    log "making $dir ($*)"
    rm -rf "$dir"
    mkdir -p target
    if python3 -m venv "$dir" &&
        "$dir/bin/python3" -m pip install --quiet --disable-pip-version-check "$@" &&
        "$dir/bin/python3" -c "import $imports"; then
        touch "$dir/.ready-$version"
    else
        rm -rf "$dir"
        log "could not make $dir (python3 -m venv or PyPI unavailable): $needed_by will skip (or fail if required)"
    fi
}

# --- Prometheus server and promtool -----------------------------------------------------------------------
debian_packages "prometheus/promtool" "command -v prometheus >/dev/null && command -v promtool >/dev/null" \
    "prometheus --version" "the Prometheus tests" prometheus

# --- Python tools the tests read spikerl's files with -----------------------------------------------------
K8S_VERSION=1.37.0
python_venv target/k8s-validate-venv "$K8S_VERSION" "kubernetes_validate, yaml" "the Kubernetes manifest tests" \
    "kubernetes-validate==$K8S_VERSION" "PyYAML>=6"
NIR_VERSION=1.0.8
python_venv target/nir-venv "$NIR_VERSION" "nir, numpy" "the NIR export test" "nir==$NIR_VERSION" numpy
TB_VERSION=2.21.0
python_venv target/tb-venv "$TB_VERSION" "tensorboard.backend.event_processing.event_accumulator" \
    "the TensorBoard test" "tensorboard==$TB_VERSION"

# --- OSMesa and ffmpeg (videos) ---------------------------------------------------------------------------
debian_packages "libOSMesa.so.8 or ffmpeg" "ldconfig -p 2>/dev/null | grep -q 'libOSMesa\.so\.8' && command -v ffmpeg >/dev/null" \
    "ffmpeg -version" "the video tests" libosmesa6 ffmpeg

# --- Slurm and MUNGE (tests/slurm.rs) -------------------------------------------------------------------
# The packages' own services are not started or needed: the test runs the daemons itself.
slurm_ready() {
    for tool in munged slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || return 1
    done
}
debian_packages "Slurm or MUNGE" slurm_ready "/usr/sbin/slurmctld -V" "the Slurm test" slurm-wlm munge

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
