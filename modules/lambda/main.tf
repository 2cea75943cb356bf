# One Lambda function from a prebuilt zip, its least-privilege execution role, its log
# group, and the per-stage alias that API Gateway invokes. It does not build packages
# (orch does) and does not know about API Gateway (modules/integration grants access).

locals {
  log_group_name = "/aws/lambda/${var.function_name}"
}

resource "aws_iam_role" "this" {
  name        = var.function_name
  description = "Execution role of the Lambda function ${var.function_name}."
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "lambda.amazonaws.com" }
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "logs" {
  name = "logs"
  role = aws_iam_role.this.id
  # Only the function's own log group: no logs:CreateLogGroup, the group is managed here.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "WriteOwnLogGroup"
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource = [aws_cloudwatch_log_group.this.arn, "${aws_cloudwatch_log_group.this.arn}:*"]
    }]
  })
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:Lambda logs carry no secrets; the AWS-managed key is enough and avoids a KMS key per stage.
  #checkov:skip=CKV_AWS_338:Retention is a per-stage choice (log_retention_days); a year is not required for these logs.
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:The function calls no private resources, so it does not run in a VPC.
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway only; a DLQ applies to asynchronous invocations.
  #checkov:skip=CKV_AWS_272:Packages are content-addressed by orch and checked by source_code_hash; code signing is not used.
  #checkov:skip=CKV_AWS_173:Secret values (secret_environment) are encrypted at rest with Lambda's AWS-managed key, not a customer-managed one; they are also in Terraform state, which must be kept encrypted.
  function_name = var.function_name
  description   = var.description
  role          = aws_iam_role.this.arn
  handler       = var.handler
  runtime       = var.runtime
  memory_size   = var.memory_size
  timeout       = var.timeout
  publish       = true

  filename         = var.package.filename
  s3_bucket        = var.package.s3_bucket
  s3_key           = var.package.s3_key
  source_code_hash = var.package.source_code_hash

  reserved_concurrent_executions = var.reserved_concurrency

  # for_each may not depend on a sensitive value: only the number of secrets is revealed.
  dynamic "environment" {
    for_each = length(var.environment) + nonsensitive(length(var.secret_environment)) > 0 ? [true] : []
    content {
      variables = merge(var.environment, var.secret_environment)
    }
  }

  tracing_config {
    mode = var.tracing_mode
  }

  tags = var.tags

  # The log group and its write permission exist before the first invocation can log.
  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.logs]
}

# The alias follows the version this apply published, unless alias_version pins another
# (orch's rollback: the function stays as it is, the stage is served by an earlier version).
resource "aws_lambda_alias" "this" {
  name             = var.stage_name
  description      = "Stage ${var.stage_name} of ${var.function_name}."
  function_name    = aws_lambda_function.this.function_name
  function_version = coalesce(var.alias_version, aws_lambda_function.this.version)
}
