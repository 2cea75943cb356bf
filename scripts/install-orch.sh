#!/usr/bin/env bash
# Install orch in a CI job from the source the project names in ORCH_PACKAGE (a pip
# requirement: `orch[sandbox] @ git+https://...@<commit>`, a wheel URL, or a name on your
# team's package index). There is deliberately no default: the name `orch` on public PyPI
# belongs to an unrelated project, and these jobs hold the AWS credentials.
set -euo pipefail
if [ -z "${ORCH_PACKAGE:-}" ]; then
  echo "ORCH_PACKAGE is not set: name where your team installs orch from in the CI file" \
       "(for example ORCH_PACKAGE='orch[sandbox] @ git+https://github.com/<you>/orch@<commit>')." >&2
  exit 1
fi
python -m pip install "$ORCH_PACKAGE"
