#!/usr/bin/env bash
# CI: the built wheel works without the checkout. Build it from a clean copy of the sources, install it (not
# editable) into a fresh venv that borrows .venv's dependencies, then encode and search a few documents with
# the default encoder from a folder outside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/qpr-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT

mkdir "$work/src"  # a copy, so no stale build/ folder of the checkout slips into the wheel
cp -r pyproject.toml README.md qpr_pyserini encoders "$work/src/"
.venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    -w "$work/dist" "$work/src"

.venv/bin/python -m venv "$work/venv"
py="$work/venv/bin/python"
# The dependencies come from .venv: a path line in a .pth file puts its site-packages on sys.path without
# running the .pth files there (so .venv's editable qpr_pyserini finder stays off).
.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))' \
    > "$("$py" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/qpr-deps.pth"
"$py" -m pip install --quiet --disable-pip-version-check --no-deps "$work"/dist/qpr_pyserini-*.whl

mkdir "$work/run" && cd "$work/run"
unset PYTHONPATH
"$py" -c 'import sys, qpr_pyserini
assert qpr_pyserini.__file__.startswith(sys.prefix), f"imported {qpr_pyserini.__file__}, not the wheel"
print("wheel installed:", qpr_pyserini.__file__)'
printf 'q1\tred apple\nq2\tgreen kiwi\n' > topics.tsv
"$py" -m qpr_pyserini.encode --corpus "$root/tests/data/fruit.jsonl" --index index --quiet
"$py" -m qpr_pyserini.search --index index --topics topics.tsv --output run.trec --hits 3 --quiet
test "$(wc -l < run.trec)" -eq 6 || { echo "error: expected 6 run lines" >&2; cat run.trec >&2; exit 1; }
echo "wheel check passed: encode + search with the default encoder outside the checkout"
