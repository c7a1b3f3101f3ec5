# Sourced by the build scripts: `log`, and `step`, which says what a build step is and how long
# it took the first time on a 2-core machine (docs/benchmarks.md, "A fresh machine"), then
# prints how long it really took when the next step starts (or at `step_done`).
log() { printf '\033[1m[pipebook]\033[0m %s\n' "$*" >&2; }

# One step of a build: what it is and how long it took the first time on a 2-core machine
# (docs/benchmarks.md, "A fresh machine"); the steps print their own time when they end.
step_started=0
step() {
  step_done
  step_started=$(date +%s)
  step_name="$1"
  log "$1${2:+ — first time on 2 cores: $2}"
}
step_done() {
  if (( step_started > 0 )); then
    log "  … $step_name: $(( $(date +%s) - step_started )) s"
  fi
  step_started=0
}
