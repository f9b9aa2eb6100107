#!/bin/sh
# Print the path of a Python interpreter of version $1 (e.g. 3.10), or exit 1.
# Tries pyenv (these machines keep 3.10-3.13 there), then pythonX.Y on PATH.
v="$1"
for candidate in \
    "$(pyenv prefix "$v" 2>/dev/null)/bin/python$v" \
    "$HOME"/.pyenv/versions/"$v".*/bin/python"$v" \
    "$(command -v "python$v" 2>/dev/null)"; do
  if [ -x "$candidate" ] && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$v'.split('.'))))" 2>/dev/null; then
    echo "$candidate"
    exit 0
  fi
done
echo "no Python $v found (install it, e.g. 'pyenv install $v')" >&2
exit 1
