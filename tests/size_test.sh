#!/usr/bin/env bash
# Files and functions that fit in a head: every tracked .cpp/.h under lib/ and cmd/ (tests
# included) has at most 600 lines and every function at most 120 lines.
#   tests/size_test.sh [source dir]   (ctest runs it as size_test)
# Function extents come from universal-ctags (scripts/install-deps.sh installs it). A file whose
# size is argued in a comment (a generated table, a parser) carries a line with
# `size-exception: <why>` and is exempt; there are none today.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
readonly kMaxFileLines=600
readonly kMaxFunctionLines=120
if ! ctags --version 2>/dev/null | grep -q 'Universal Ctags'; then
  echo "size_test: universal-ctags is missing; run scripts/install-deps.sh" >&2
  exit 1
fi
list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -- 'lib/*.cpp' 'lib/*.h' 'cmd/*.cpp' 'cmd/*.h'
  else
    find lib cmd -type f \( -name '*.cpp' -o -name '*.h' \) | sort
  fi
}
mapfile -t files < <(list_files | while read -r f; do
  grep -q 'size-exception:' "$f" || echo "$f"
done)
status=0
while read -r lines file; do
  [ "$file" = total ] && continue
  if [ "$lines" -gt "$kMaxFileLines" ]; then
    echo "  $file: $lines lines (at most $kMaxFileLines)"
    status=1
  fi
done < <(wc -l "${files[@]}")
while read -r lines file name; do
  echo "  $file: function $name has $lines lines (at most $kMaxFunctionLines)"
  status=1
done < <(ctags -x --kinds-c++=f --fields=+ne --_xformat='%{end} %{line} %F %N' "${files[@]}" |
           awk -v max="$kMaxFunctionLines" '{ n = $1 - $2 + 1; if (n > max) print n, $3, $4 }')
if [ "$status" -ne 0 ]; then
  echo "size_test: split the files and functions above along their seams (named steps)" >&2
  exit 1
fi
echo "size_test: ok (${#files[@]} files)"
