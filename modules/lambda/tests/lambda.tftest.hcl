mock_provider "aws" {
  # The provider validates the role ARN even against a mock, so give it a real shape.
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/orch-test-dev"
    }
  }
}

variables {
  function_name = "orch-test-dev"
  stage_name    = "dev"
  handler       = "handler.handler"
  package = {
    filename         = "/tmp/orch-test.zip"
    source_code_hash = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
  }
}

run "alias_is_named_after_the_stage_and_points_at_the_published_version" {
  command = apply

  assert {
    condition     = aws_lambda_alias.this.name == "dev"
    error_message = "The alias must be named after the stage."
  }

  assert {
    condition     = aws_lambda_function.this.publish && aws_lambda_alias.this.function_version == aws_lambda_function.this.version
    error_message = "The function must publish a version and the alias must point at it."
  }

  assert {
    condition     = aws_cloudwatch_log_group.this.name == "/aws/lambda/orch-test-dev" && aws_cloudwatch_log_group.this.retention_in_days == 14
    error_message = "The log group must be /aws/lambda/<name> with the default retention of 14 days."
  }

  assert {
    condition     = aws_lambda_function.this.tracing_config[0].mode == "PassThrough" && length(aws_lambda_function.this.environment) == 0
    error_message = "Tracing must default to PassThrough and an empty environment must omit the environment block."
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.logs.policy).Statement[0].Action == ["logs:CreateLogStream", "logs:PutLogEvents"] && jsondecode(aws_iam_role_policy.logs.policy).Statement[0].Resource == [
      aws_cloudwatch_log_group.this.arn, "${aws_cloudwatch_log_group.this.arn}:*"
    ]
    error_message = "The execution role may only create log streams and put log events in its own log group."
  }
}

run "secret_environment_is_merged_into_the_environment" {
  command = apply

  variables {
    environment        = { LOG_LEVEL = "debug" }
    secret_environment = { DB_PASSWORD = "from-a-test" }
  }

  assert {
    condition     = nonsensitive(aws_lambda_function.this.environment[0].variables) == tomap({ LOG_LEVEL = "debug", DB_PASSWORD = "from-a-test" })
    error_message = "Secret values must reach the function's environment beside the plain ones."
  }
}

run "secrets_alone_still_make_an_environment_block" {
  command = apply

  variables {
    secret_environment = { DB_PASSWORD = "from-a-test" }
  }

  assert {
    condition     = length(aws_lambda_function.this.environment) == 1
    error_message = "A function with only secret environment values must still get its environment block."
  }
}

run "memory_below_128_mb_is_rejected" {
  command = plan
  variables {
    memory_size = 64
  }
  expect_failures = [var.memory_size]
}

run "memory_above_10240_mb_is_rejected" {
  command = plan
  variables {
    memory_size = 10241
  }
  expect_failures = [var.memory_size]
}

run "timeout_above_900_s_is_rejected" {
  command = plan
  variables {
    timeout = 901
  }
  expect_failures = [var.timeout]
}

run "unsupported_runtime_is_rejected" {
  command = plan
  variables {
    runtime = "python3.8"
  }
  expect_failures = [var.runtime]
}

run "package_with_both_forms_is_rejected" {
  command = plan
  variables {
    package = {
      filename         = "/tmp/orch-test.zip"
      s3_bucket        = "bucket"
      s3_key           = "key.zip"
      source_code_hash = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    }
  }
  expect_failures = [var.package]
}

run "s3_package_is_accepted" {
  command = plan
  variables {
    package = {
      s3_bucket        = "bucket"
      s3_key           = "key.zip"
      source_code_hash = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    }
  }

  assert {
    condition     = aws_lambda_function.this.s3_key == "key.zip" && aws_lambda_function.this.filename == null
    error_message = "An S3 package must set s3_bucket/s3_key and no filename."
  }
}

run "log_retention_not_allowed_by_cloudwatch_is_rejected" {
  command = plan
  variables {
    log_retention_days = 10
  }
  expect_failures = [var.log_retention_days]
}

run "alias_version_pins_the_alias_to_an_earlier_version" {
  command = plan
  variables {
    alias_version = "3"
  }

  assert {
    condition     = aws_lambda_alias.this.function_version == "3"
    error_message = "A pinned alias_version must be the version the alias points at (orch's rollback)."
  }
}

run "alias_version_must_be_a_version_number" {
  command = plan
  variables {
    alias_version = "$LATEST"
  }
  expect_failures = [var.alias_version]
}
