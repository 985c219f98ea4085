#!/usr/bin/env bash
# Install everything the tests need (including the official veri/openai clients they drive), then run them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
set +e
python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$code"
