"""orch: per-stage Terraform deploys of a Lambda function behind an API Gateway REST API."""

__version__ = "0.1.0"
