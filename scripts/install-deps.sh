#!/usr/bin/env bash
# Installs the Debian packages qv needs to build, test and run its demo.
# Needs root (or sudo). Safe to run again.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  build-essential cmake pkg-config ca-certificates \
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg \
  libopenblas-dev libcjson-dev zlib1g-dev libutf8proc-dev \
  libjpeg62-turbo-dev libwebp-dev libxxhash-dev \
  libmicrohttpd-dev curl jq \
  clang \
  parallel  # GNU parallel: the local stand-in for the Slurm/Kubernetes samples (tests/fixture_cluster_samples.sh)
