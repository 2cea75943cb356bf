"""orch's local API gateway: serves a sandbox stage's REST API and runs its Lambda handlers."""
