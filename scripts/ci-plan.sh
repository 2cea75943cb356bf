#!/usr/bin/env bash
# Plan each stage named on the command line; changes are fine (exit 2), errors are not.
# Without AWS credentials (fork pull requests get no secrets) the plan runs in the sandbox.
set -uo pipefail
sandbox=()
if [ -z "${AWS_ACCESS_KEY_ID:-}" ] && [ -z "${AWS_PROFILE:-}" ]; then
  echo "no AWS credentials: planning against the orch sandbox"
  sandbox=(--sandbox)
fi
status=0
for stage in "$@"; do
  orch plan "$stage" "${sandbox[@]}" --detailed-exitcode
  code=$?
  case "$code" in
    0) echo "stage $stage: no changes" ;;
    2) echo "stage $stage: has changes" ;;
    *) echo "stage $stage: plan failed (exit $code)"; status=1 ;;
  esac
done
exit "$status"
