"""`orch ci`: decide from the CI environment what to run, then run it and report.

events (what the CI says happened) -> policy (stages/ci.yaml) -> decide (pure: actions) ->
run (plans with summaries and a PR comment, applies with the commit check, smoke checks and
Slack). Each module owns one step; only `run` reaches Terraform, AWS, git or the network.
"""
