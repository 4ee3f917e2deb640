#!/usr/bin/env bash
# Rewrites README.md's key table (between <!-- keys:begin --> and <!-- keys:end -->) from the key table in
# vmm/config/keys.h, as the built kite renders it. The unit test "README.md's key block is the rendering of
# the key table" (tests/unit/config/keys_test.cpp) fails until this has been run after a change to the table.
# Usage: scripts/update-readme-keys.sh [KITE_BINARY]   (default build/vmm/kite; build it first)
set -euo pipefail
cd "$(dirname "$0")/.."
kite=${1:-build/vmm/kite}
[[ -x $kite ]] || { echo "$kite not found: build it first (ninja -C build kite)" >&2; exit 1; }
grep -q '^<!-- keys:begin -->$' README.md && grep -q '^<!-- keys:end -->$' README.md ||
    { echo "README.md lacks the <!-- keys:begin --> / <!-- keys:end --> lines" >&2; exit 1; }
block=$(mktemp)
trap 'rm -f "$block" README.md.new' EXIT
"$kite" keys --markdown > "$block"
awk -v block="$block" '
    /^<!-- keys:end -->$/ { skipping = 0 }
    !skipping { print }
    /^<!-- keys:begin -->$/ { while ((getline line < block) > 0) print line; skipping = 1 }
' README.md > README.md.new
mv README.md.new README.md
echo "README.md: key table updated"
