#!/bin/sh
# Build the sdist and the wheel, then check what a user of each gets:
# - the wheel installs with wheels only (every dependency has one) and `outkit` runs;
# - the sdist carries its test suite: unpacked, it collects every test without an error
#   (make check-dist FULL=1 runs the whole suite from it).
set -eu
python="${1:-python3}"
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m build --outdir "$tmp/dist" "$root" >/dev/null 2>&1 || { echo "check-dist: the build failed" >&2; exit 1; }
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --only-binary :all: "$tmp"/dist/*.whl
"$tmp/venv/bin/outkit" --version
tar -xzf "$tmp"/dist/*.tar.gz -C "$tmp"
sdist=$(find "$tmp" -maxdepth 1 -type d -name 'outkit_cli-*' | head -n 1)
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --only-binary :all: -c "$root/constraints/dev.txt" "$(ls "$tmp"/dist/*.whl)[test]"
cd "$sdist"
if [ "${FULL:-}" = 1 ]; then
  "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider
else
  "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider --collect-only >/dev/null
  echo "sdist: $(ls "$tmp"/dist/*.tar.gz | xargs -n1 basename): the test suite collects"
fi
