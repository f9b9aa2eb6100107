#!/bin/sh
# The inbox's browser tests drive the system's headless Chromium (tests/browser.py).
# Installs it when it is missing and we can (root with apt-get: Debian, Ubuntu); otherwise
# says how. Quiet when there is nothing to do; idempotent.
have() { command -v "$1" >/dev/null 2>&1; }
if { have chromium || have chromium-browser || have google-chrome; } && have chromedriver; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "installing chromium and chromium-driver (apt-get) for the inbox's browser tests" >&2
    log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "could not install Chromium; the browser tests will fail under CI, be skipped elsewhere" >&2
    fi
    rm -f "$log"
else
    echo "note: the inbox's browser tests need Chromium and its driver, e.g." \
        "'sudo apt-get install chromium chromium-driver' (Debian/Ubuntu);" \
        "they are skipped without it" >&2
fi
