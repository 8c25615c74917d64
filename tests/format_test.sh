#!/usr/bin/env bash
# Every tracked C++ file is formatted as .clang-format says (Google style, 100 columns).
#   tests/format_test.sh [source dir]   (ctest runs it as format_test)
# Fix what it reports with: git ls-files '*.cpp' '*.h' | xargs clang-format -i
# clang-format's output differs between major versions: the check uses Debian's default
# clang-format (scripts/install-deps.sh installs it), or clang-format-14 when both exist.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
tool="$(command -v clang-format-14 || command -v clang-format || true)"
if [ -z "$tool" ]; then
  echo "format_test: clang-format is missing; run scripts/install-deps.sh" >&2
  exit 1
fi
list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z -- '*.cpp' '*.h'
  else  # a source tree without git: everything but build directories
    find . \( -name .git -o -name 'build*' \) -prune -o -type f \( -name '*.cpp' -o -name '*.h' \) -print0
  fi
}
if ! out="$(list_files | xargs -0 -r "$tool" --dry-run --Werror 2>&1)"; then
  echo "$out" | grep -E '^[^ ].*(warning|error):' | cut -d: -f1 | sort -u | sed 's/^/  not formatted: /'
  echo "format_test: run \`git ls-files '*.cpp' '*.h' | xargs $(basename "$tool") -i\` and commit" >&2
  exit 1
fi
echo "format_test: ok ($(list_files | tr -cd '\0' | wc -c) files, $("$tool" --version | grep -o 'version [0-9.]*'))"
