# Long steps shown while they run (sourced by e2e/toolchain/build.sh and
# e2e/cluster/build-images.sh).
#
#   STEP_TOTAL=N                       how many steps this run may take (STEP_N=k-1
#                                      before a step numbers it k)
#   step_run KEY LABEL LOGFILE cmd...  runs cmd with all its output in LOGFILE
#
# Shows "[n/N] LABEL", the time elapsed and the time the same step took last
# time (kept per KEY in the cache). On a terminal the line is updated in place
# every second; otherwise (CI, a pipe) it is printed when the step starts, again
# every SPANPROF_PROGRESS_EVERY seconds (default 60) and when it ends.
# SPANPROF_PROGRESS=inplace|lines overrides the choice (a parent that forwards
# this script's stderr to a terminal sets inplace). When cmd fails, the last
# lines of LOGFILE are printed and step_run returns its status.
# All of it goes to stderr.

STEP_N=0
STEP_TOTAL=${STEP_TOTAL:-0}
STEP_PID=''
STEP_TIMES="${SPANPROF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/span-profiling}/step-times.tsv"

step_mode() {
  case "${SPANPROF_PROGRESS:-}" in
    inplace | lines) echo "$SPANPROF_PROGRESS" ;;
    *) if [ -t 2 ] && [ -z "${CI:-}" ]; then echo inplace; else echo lines; fi ;;
  esac
}

step_duration() { # seconds -> 1m05s
  local s=$1
  if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

step_last() { # KEY -> seconds the step took last time, or nothing
  if [ -f "$STEP_TIMES" ]; then awk -F '\t' -v k="$1" '$1 == k {v = $2} END {if (v != "") print v}' "$STEP_TIMES"; fi
}

step_remember() { # KEY SECONDS
  mkdir -p "$(dirname "$STEP_TIMES")"
  local tmp="$STEP_TIMES.$$"
  { if [ -f "$STEP_TIMES" ]; then awk -F '\t' -v k="$1" '$1 != k' "$STEP_TIMES"; fi; printf '%s\t%s\n' "$1" "$2"; } >"$tmp" && mv -f "$tmp" "$STEP_TIMES"
}

# Ends a step still running (for the caller's EXIT trap).
step_kill() {
  if [ -n "$STEP_PID" ]; then kill "$STEP_PID" 2>/dev/null || true; fi
}

step_run() {
  local key=$1 label=$2 logfile=$3
  shift 3
  STEP_N=$((STEP_N + 1))
  local mode last hint prefix t0=$SECONDS status=0 every=${SPANPROF_PROGRESS_EVERY:-60} next
  mode=$(step_mode)
  last=$(step_last "$key")
  hint=${last:+, last time $(step_duration "$last")}
  prefix="[$STEP_N/$STEP_TOTAL] $label"
  mkdir -p "$(dirname "$logfile")"
  : >"$logfile"
  "$@" >>"$logfile" 2>&1 </dev/null &
  STEP_PID=$!
  # Polled a few times a second, so a short step is not rounded up to the next second.
  if [ "$mode" = inplace ]; then
    local shown=-1
    while kill -0 "$STEP_PID" 2>/dev/null; do
      if ((SECONDS - t0 != shown)); then
        shown=$((SECONDS - t0))
        printf '\r\033[K%s  %s%s' "$prefix" "$(step_duration "$shown")" "$hint" >&2
      fi
      sleep 0.2
    done
    printf '\r\033[K' >&2
  else
    printf '%s (log: %s%s)\n' "$prefix" "$logfile" "$hint" >&2
    next=$((t0 + every))
    while kill -0 "$STEP_PID" 2>/dev/null; do
      sleep 0.2
      if ((SECONDS >= next)); then
        printf '%s  %s elapsed%s\n' "$prefix" "$(step_duration $((SECONDS - t0)))" "$hint" >&2
        next=$((next + every))
      fi
    done
  fi
  wait "$STEP_PID" || status=$?
  STEP_PID=''
  local took=$((SECONDS - t0))
  if [ "$status" -ne 0 ]; then
    printf '%s: failed after %s (exit %s); the end of %s:\n' "$prefix" "$(step_duration "$took")" "$status" "$logfile" >&2
    tail -n 30 "$logfile" | sed 's/^/    /' >&2
    return "$status"
  fi
  step_remember "$key" "$took"
  printf '%s: done in %s\n' "$prefix" "$(step_duration "$took")" >&2
}
