#!/usr/bin/env bash
# Formatting: every .c/.h of ours formats to itself under .clang-format.
#   scripts/check-format.sh          clang-format --dry-run -Werror (CI, CTest lint_format)
#   scripts/check-format.sh --write  reformat in place (make format)
# Files: what git tracks (never node_modules or build dirs); outside a git checkout, the same
# folders found by find. The output depends on clang-format's version: CI uses Debian 12's
# (clang-format 14, installed by scripts/deps.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v clang-format >/dev/null ||
  { echo "check-format: clang-format not installed (scripts/deps.sh test)" >&2; exit 2; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files -- '*.c' '*.h' | grep -v -e '/node_modules/' -e '^build')
else
  mapfile -t files < <(find service api tests bench fuzz -name node_modules -prune -o \
    \( -name '*.c' -o -name '*.h' \) -type f -print | sort)
fi
[ ${#files[@]} -gt 0 ] || { echo "check-format: no sources found" >&2; exit 2; }
if [ "${1:-}" = --write ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
# One line per file that would change (the whole --dry-run output buries the list).
bad=0
for f in "${files[@]}"; do
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "$f: $(clang-format "$f" | diff "$f" - | grep -c '^>') line(s) would change"
    bad=$((bad + 1))
  fi
done
if [ "$bad" -gt 0 ]; then
  echo "check-format: $bad of ${#files[@]} files differ from .clang-format" \
    "(see: clang-format FILE | diff FILE -; make format fixes them)" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
