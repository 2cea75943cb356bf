#!/usr/bin/env bash
# Smoke-check a deployed stage: POST the prototype's request to its invoke URL and check
# the function saw the stage. Usage: smoke.sh STAGE [--sandbox]
set -euo pipefail
stage="${1:?usage: smoke.sh STAGE [--sandbox]}"
shift
url="$(orch output "$stage" "$@" --json | python -c 'import json,sys; print(json.load(sys.stdin)["invoke_url"])')"
body="$(curl -sS --fail-with-body --max-time 30 -X POST "${url}?deptno-param=smoke" \
  -H 'Authorization: smoke' -H 'Content-Type: application/json' -d '{"smoke": true}')"
python - "$stage" "$body" <<'PY'
import json, sys
stage, body = sys.argv[1], json.loads(sys.argv[2])
seen = body.get("stage") or body.get("event", {}).get("context", {}).get("stage")
assert seen == stage, f"the function answered for stage {seen!r}, expected {stage!r}: {body}"
print(f"smoke check passed: stage {stage} answered")
PY
