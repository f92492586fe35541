#!/usr/bin/env bash
# Install LiteLLM's proxy into its own virtual environment (benchmarks/.venv-litellm, gitignored).
# Idempotent: does nothing when the `litellm` command is already there. Prints the command path.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${LITELLM_VENV:-$here/.venv-litellm}"
if [ ! -x "$venv/bin/litellm" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet 'litellm[proxy]' >&2
fi
echo "$venv/bin/litellm"
