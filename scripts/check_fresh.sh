#!/bin/sh
# A newcomer's first run: clone this checkout's HEAD into a temp dir and run the README's two
# set-up commands there (`make demo`, `make test`) with a fresh HOME and XDG dirs and a PATH
# that has the system Python but no pre-installed project venv. Fails if either fails.
#
#   make check-fresh            (or: sh scripts/check_fresh.sh [--keep])
#
# Only the machine's pip settings are carried over (PIP_* variables, proxies, CA bundles
# and the user's pip.conf via PIP_CONFIG_FILE): a newcomer's pip is configured for their
# network too; no package comes from this checkout's .venv.
set -eu

keep=0
[ "${1:-}" = "--keep" ] && keep=1

root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=$(mktemp -d "${TMPDIR:-/tmp}/outkit-fresh.XXXXXX")
if [ "$keep" = 1 ]; then
    echo "check-fresh: keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi

# uncommitted changes are not part of the clone: say so, a fresh clone would not have them
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
    echo "check-fresh: note: uncommitted changes in $root are not part of the check" >&2
fi
git clone --quiet --no-hardlinks "$root" "$work/repo"
mkdir -p "$work/home"

# system directories only: no pyenv shims, no ~/.local/bin, no project .venv
fresh_path=/usr/local/bin:/usr/bin:/bin
if ! PATH=$fresh_path command -v python3 >/dev/null 2>&1; then
    echo "check-fresh: no python3 on $fresh_path" >&2
    exit 1
fi

pip_conf=${PIP_CONFIG_FILE:-}
if [ -z "$pip_conf" ]; then
    for f in "${XDG_CONFIG_HOME:-$HOME/.config}/pip/pip.conf" "$HOME/.pip/pip.conf"; do
        if [ -f "$f" ]; then pip_conf=$f; break; fi
    done
fi

# a clean environment: only the variables named here, plus pip/proxy/CA settings
passthrough=$(env | grep -E '^(PIP_[A-Z_]+|https?_proxy|HTTPS?_PROXY|no_proxy|NO_PROXY|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE)=' || true)

# A newcomer types `make test` in a terminal, where Ctrl-C works. Started in the background
# from a script, this shell inherits SIGINT ignored (and cannot un-ignore it itself), and so
# would every sandbox the tests start: the Ctrl-C tests would fail. Restore it, then exec.
default_sigint='import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])'

run_fresh() {
    # shellcheck disable=SC2086
    (
        cd "$work/repo"
        IFS='
'
        env -i \
            HOME="$work/home" \
            XDG_CONFIG_HOME="$work/home/.config" \
            XDG_DATA_HOME="$work/home/.local/share" \
            XDG_CACHE_HOME="$work/home/.cache" \
            XDG_STATE_HOME="$work/home/.local/state" \
            PATH="$fresh_path" \
            LANG=C.UTF-8 \
            TERM=dumb \
            ${pip_conf:+PIP_CONFIG_FILE=$pip_conf} \
            $passthrough \
            python3 -c "$default_sigint" "$@"
    )
}

start=$(date +%s)
status=0
for target in demo test; do
    echo "check-fresh: make $target (fresh clone in $work/repo)"
    t0=$(date +%s)
    if run_fresh make "$target"; then
        echo "check-fresh: make $target passed in $(( $(date +%s) - t0 )) s"
    else
        echo "check-fresh: make $target FAILED after $(( $(date +%s) - t0 )) s" >&2
        status=1
        break
    fi
done
total=$(( $(date +%s) - start ))
if [ "$status" = 0 ]; then
    echo "check-fresh: OK in $total s"
else
    echo "check-fresh: FAILED in $total s" >&2
fi
exit "$status"
