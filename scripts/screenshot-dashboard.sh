#!/usr/bin/env bash
# Renders a page of `vene dashboard` with headless Chromium and saves a PNG screenshot, to
# check that it reads well (and to make docs/images/dashboard.png).
#
# Usage: scripts/screenshot-dashboard.sh PAGE.html OUT.png [WIDTH [HEIGHT]]
#
# Needs Chromium (Debian: `apt-get install -y chromium`; `CHROMIUM=/path/to/chrome` to use
# another). The page is self-contained, so the browser is offline: no network is used.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 PAGE.html OUT.png [WIDTH [HEIGHT]]" >&2
    exit 2
fi
page=$1
out=$2
width=${3:-1100}
height=${4:-1400}
[ -f "$page" ] || { echo "$0: no such page: $page" >&2; exit 1; }
browser=${CHROMIUM:-}
if [ -z "$browser" ]; then
    for b in chromium chromium-browser google-chrome; do
        if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
    done
fi
[ -n "$browser" ] || { echo "$0: no Chromium found (apt-get install -y chromium, or set CHROMIUM)" >&2; exit 1; }
abs_page=$(cd "$(dirname "$page")" && pwd)/$(basename "$page")
mkdir -p "$(dirname "$out")"
abs_out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
# A throwaway profile, so that no state of another browser session is read or written.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# --no-sandbox: containers and CI often run as root, where Chromium's sandbox cannot start.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile" --no-first-run --disable-extensions \
    --window-size="$width,$height" --screenshot="$abs_out" "file://$abs_page" >/dev/null 2>&1
[ -s "$abs_out" ] || { echo "$0: Chromium wrote no screenshot" >&2; exit 1; }
echo "wrote $out"
