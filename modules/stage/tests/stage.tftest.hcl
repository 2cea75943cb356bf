mock_provider "aws" {}

variables {
  rest_api_id               = "abc123"
  stage_name                = "dev"
  redeployment_fingerprints = { "POST /" = "da39a3ee5e6b4b0d3255bfef95601890afd80709" }
}

run "deployment_is_triggered_by_the_fingerprints_only" {
  command = plan

  assert {
    condition     = length(aws_api_gateway_deployment.this.triggers) == 1 && aws_api_gateway_deployment.this.triggers["redeployment"] == sha1(jsonencode(var.redeployment_fingerprints))
    error_message = "The deployment's only trigger must be the hash of the fingerprints."
  }

  assert {
    condition     = aws_api_gateway_method_settings.this.method_path == "*/*" && aws_api_gateway_method_settings.this.settings[0].logging_level == "OFF"
    error_message = "Method settings must apply to */* with logging OFF by default."
  }

  assert {
    condition     = length(aws_cloudwatch_log_group.access) == 0 && length(aws_api_gateway_stage.this.access_log_settings) == 0
    error_message = "Access logs must be off unless enabled."
  }
}

run "access_logs_go_to_their_own_log_group" {
  command = plan
  variables {
    enable_access_logs        = true
    access_log_retention_days = 30
  }

  assert {
    condition     = aws_cloudwatch_log_group.access[0].name == "API-Gateway-Access-Logs_abc123/dev" && aws_cloudwatch_log_group.access[0].retention_in_days == 30
    error_message = "Enabled access logs must get a log group with the configured retention."
  }
}

run "stage_name_with_a_hyphen_is_rejected" {
  command = plan
  variables {
    stage_name = "dev-1"
  }
  expect_failures = [var.stage_name]
}

run "unknown_logging_level_is_rejected" {
  command = plan
  variables {
    logging_level = "DEBUG"
  }
  expect_failures = [var.logging_level]
}
