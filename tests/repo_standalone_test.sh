#!/usr/bin/env bash
# The repository stands alone: no tracked file refers to documents kept outside it or to a path
# of a development machine. docs/design.md is the design; schemas/ hold the API contracts.
#   tests/repo_standalone_test.sh [source dir]   (ctest runs it as repo_standalone_test)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
# Outside documents: a sibling shared/ folder, its seeds/ API documents, an upper-case DESIGN.md.
# Machine paths: home and work directories of development machines (/tmp examples are fine).
pattern='shared/|seeds/|DESIGN\.md|/work/|/home/|/root/'
list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z
  else  # a source tree without git: everything but build directories
    find . \( -name .git -o -name 'build*' -o -name data \) -prune -o -type f -print0
  fi
}
hits="$(list_files | grep -zv 'repo_standalone_test\.sh$' |
  xargs -0 -r grep -EnIH -- "$pattern" 2>/dev/null || true)"
if [ -n "$hits" ]; then
  echo "$hits"
  echo "repo_standalone_test: the lines above refer to files outside the repository or to a" \
    "machine's paths; point to docs/design.md (or the relevant doc) instead" >&2
  exit 1
fi
echo "repo_standalone_test: ok"
