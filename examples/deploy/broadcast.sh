#!/usr/bin/env bash
# One broadcast of a rundown: what cron, systemd, Docker and Kubernetes run in these examples.
#
#   broadcast.sh [--env-file FILE] [MORE 'linly-push live' FLAGS...]
#
# Settings come from the environment (or from FILE: KEY=VALUE lines, the format systemd's
# EnvironmentFile= reads; values are taken literally, quotes removed, nothing expanded):
#   RUNDOWN     the show, a .toml rundown (required)
#   STREAM_URL  where to push; several separated by spaces. Write the key as ${STREAM_KEY}:
#               linly-push expands it and never prints it. Unset: LINLY_PUSH_URL, then the
#               preset's live.url.
#   STREAM_KEY  the key STREAM_URL refers to: from a Secret, or a mode-600 environment file
#   PRESET      live (default), mobile, hd, local-test or a .toml file
#   AT, WARMUP  go on air at AT (20:00, or ISO) with WARMUP seconds of idle before it
#   DURATION    end after this long (45m, 1h30m), whatever the rundown holds
#   RECORD      also record to this file; date(1) % codes are filled in (show-%F.mkv)
#   EVENTS_LOG  append the JSON events to this file instead of standard output
#   LINLY_PUSH  the linly-push command (default: linly-push on PATH)
#
# It ends as linly-push does, with its exit code (docs/contract.md): 0 done, 2 usage, 3 input,
# 4 backend, 5 output, 143 after SIGTERM (the broadcast was closed cleanly). linly-push replaces
# this shell (exec), so a supervisor's SIGTERM reaches it directly.
set -euo pipefail

usage() {
    echo "broadcast.sh: error: $1" >&2
    exit 2  # linly-push's code for usage errors, so supervisors treat both alike
}

load_env_file() {
    local blank='^[[:space:]]*([#;].*)?$'
    local assignment='^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*[^[:space:]])?[[:space:]]*$'
    local quoted="^'(.*)'\$|^\"(.*)\"\$"
    local line key value number=0
    [[ -r $1 ]] || usage "cannot read the environment file $1"
    while IFS= read -r line || [[ -n $line ]]; do
        number=$((number + 1))
        [[ $line =~ $blank ]] && continue
        # The line itself is not shown: it may hold a key.
        [[ $line =~ $assignment ]] || usage "$1, line $number: not a KEY=VALUE line"
        key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
        if [[ $value =~ $quoted ]]; then
            value=${BASH_REMATCH[1]}${BASH_REMATCH[2]}
        fi
        export "$key=$value"
    done <"$1"
}

if [[ ${1:-} == --env-file ]]; then
    [[ $# -ge 2 ]] || usage "--env-file needs a file"
    load_env_file "$2"
    shift 2
fi

[[ -n ${RUNDOWN:-} ]] || usage "set RUNDOWN to the show's .toml file"

args=(live --rundown "$RUNDOWN" --preset "${PRESET:-live}" --json)
read -ra urls <<<"${STREAM_URL:-}"
for url in "${urls[@]}"; do
    args+=(--url "$url")
done
[[ -n ${AT:-} ]] && args+=(--at "$AT")
[[ -n ${WARMUP:-} ]] && args+=(--warmup "$WARMUP")
[[ -n ${DURATION:-} ]] && args+=(--duration "$DURATION")
[[ -n ${RECORD:-} ]] && args+=(--record "$(date +"$RECORD")")

if [[ -n ${EVENTS_LOG:-} ]]; then
    exec >>"$EVENTS_LOG"
fi
# LINLY_PUSH is split at spaces on purpose ("python3 -m linly_push" works too).
exec ${LINLY_PUSH:-linly-push} "${args[@]}" "$@"
