# shellcheck shell=bash
# shellcheck disable=SC2034  # globals used by scripts/test and the other libs
# Output, timing and step helpers for scripts/test. Sourced, not run.

say() { printf '==> %s\n' "$*"; }
warn() { printf '==> warning: %s\n' "$*" >&2; }
die() {
  printf '==> error: %s\n' "$*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"; }

# Milliseconds since the epoch (bash 5's EPOCHREALTIME; its decimal point follows the locale).
now_ms() {
  if [[ -n ${EPOCHREALTIME:-} ]]; then
    local us=${EPOCHREALTIME//[!0-9]/}
    echo $((10#$us / 1000))
  else
    date +%s%3N
  fi
}
fmt_ms() { printf '%d.%ds' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# A command line as one could paste it back into a shell.
show_cmd() {
  local out='' w
  for w in "$@"; do
    if [[ $w =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+="$w "; else out+="${w@Q} "; fi
  done
  printf '%s' "${out% }"
}

# Last lines of a log file, indented, for error messages.
log_tail() {
  local file=$1 n=${2:-30}
  if [[ -s $file ]]; then
    printf '    --- last %d lines of %s ---\n' "$n" "$file" >&2
    tail -n "$n" "$file" | sed 's/^/    | /' >&2
  else
    printf '    (%s is empty)\n' "$file" >&2
  fi
}

STEPS=()
# run_step NAME CMD...: run a check; on failure end the script with its exit code (the EXIT trap reports).
run_step() {
  local name=$1
  shift
  say "$name: $(show_cmd "$@")"
  local t0 rc=0 dt
  t0=$(now_ms)
  "$@" || rc=$?
  dt=$(($(now_ms) - t0))
  if ((rc == 0)); then
    STEPS+=("$(printf '  ok      %7s  %s' "$(fmt_ms "$dt")" "$name")")
  else
    STEPS+=("$(printf '  FAILED  %7s  %s (exit %d)' "$(fmt_ms "$dt")" "$name" "$rc")")
    FAILED_STEP=$name
    if [[ $name == *tests* ]]; then KEEP_SERVICE_LOGS=1; fi # the servers' logs may explain it
    exit "$rc"
  fi
}

print_summary() {
  local verdict=$1 line
  say "summary"
  for line in "${STEPS[@]}"; do printf '%s\n' "$line"; done
  printf '  %s in %s (tools: %s)\n' "$verdict" "$(fmt_ms $(($(now_ms) - T_START)))" "${TOOLS_STATE:-?}"
}
