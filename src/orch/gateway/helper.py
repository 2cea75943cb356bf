"""Entry point of a helper gateway process: ``python -m orch.gateway.helper CONFIG_JSON``.

Started only by ``orch.gateway.multi.HelperProcesses`` (on behalf of
``orch.gateway.app.build_server``); it builds this process's gateway with the composition
root and runs the helper protocol. It owns nothing else.
"""

from __future__ import annotations

import json
import sys

from orch.gateway.app import build_helper
from orch.gateway.multi import run_helper

if __name__ == "__main__":
    raise SystemExit(run_helper(json.loads(sys.argv[1]), build_helper))
