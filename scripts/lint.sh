#!/usr/bin/env bash
# Lint and format check: eslint (typescript-eslint, type-aware; tools/lint/eslint.config.mjs) and `prettier --check`
# (.prettierrc) over the paths below; exits non-zero on any finding. `npm run lint`; scripts/test.sh runs it first.
#   scripts/lint.sh            check the paths below
#   scripts/lint.sh --fix      also apply eslint's fixes and prettier's formatting to them
#   scripts/lint.sh PATH...    check these paths instead
# The tools are their own package in tools/lint/ (not a workspace): typescript-eslint needs TypeScript's JS API
# (< 6.1), while the project builds with TypeScript 7.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
flocker_ensure_node || exit 1

# Every package's TypeScript and the e2e suite, held clean (a whole package directory where prettier also keeps its
# README and package.json; src/ elsewhere). A new package is added here.
PATHS=(
  packages/api
  packages/node-config
  packages/web-ui
  packages/runtime/src
  packages/metrics/src
  packages/backup/src
  packages/control-api/src
  packages/cli/src
  packages/container-agent/src
  packages/storage-drivers/src
  packages/volume-plugin/src
  packages/dataset-agent/src
  packages/csi-driver/src
  e2e/src
)

fix=0
if [ "${1:-}" = --fix ]; then fix=1; shift; fi
[ $# -gt 0 ] && PATHS=("$@")

tools=tools/lint
flocker_npm_ci "$FLOCKER_ROOT/$tools" --no-fund --no-audit --loglevel=error || exit 1
if [ ! -d node_modules ]; then echo "flocker lint: run npm ci first (type-aware rules read the packages' types)" >&2; exit 1; fi

# Tracked and new (not ignored) files, so a file is checked before it is committed.
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- "${PATHS[@]}" | sort -u |
  while read -r f; do [ -f "$f" ] && echo "$f"; done)
mapfile -t code < <(printf '%s\n' "${files[@]}" | grep -E '\.(ts|tsx|mts)$' | grep -v '\.d\.ts$')

status=0
eslint=("$tools/node_modules/.bin/eslint" --config "$tools/eslint.config.mjs" --max-warnings 0)
prettier=("$tools/node_modules/.bin/prettier" --ignore-unknown --log-level warn)
if [ $fix = 1 ]; then eslint+=(--fix); prettier+=(--write); else prettier+=(--check); fi
# A check runs prettier beside eslint (each is one Node thread: on CI's two cores the pair takes eslint's time, not the
# sum; SPEED-CI s26), its findings printed after eslint's. With --fix both write the files: one after the other.
pretty_out=""; pretty_pid=""
if [ $fix = 0 ] && [ ${#files[@]} -gt 0 ]; then
  pretty_out="$(mktemp)"
  "${prettier[@]}" "${files[@]}" >"$pretty_out" 2>&1 &
  pretty_pid=$!
fi
if [ ${#code[@]} -gt 0 ]; then
  "${eslint[@]}" "${code[@]}" || { status=1; echo "flocker lint: eslint found problems (above)" >&2; }
fi
if [ -n "$pretty_pid" ]; then
  wait "$pretty_pid"; pretty_rc=$?
  cat "$pretty_out" >&2; rm -f "$pretty_out"
  [ $pretty_rc = 0 ] || { status=1; echo "flocker lint: not formatted as prettier would (scripts/lint.sh --fix)" >&2; }
elif [ ${#files[@]} -gt 0 ]; then
  "${prettier[@]}" "${files[@]}" || { status=1; echo "flocker lint: not formatted as prettier would (scripts/lint.sh --fix)" >&2; }
fi
[ $status = 0 ] && echo "flocker lint: eslint and prettier clean on ${#files[@]} files (${#code[@]} TypeScript)"
exit $status
