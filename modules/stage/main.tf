# A deployment of a REST API and the stage that serves it, with its method settings and
# optional access logs. It redeploys only when redeployment_fingerprints change, and owns
# no API resources, methods or integrations (modules/rest_api, modules/integration).

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = var.rest_api_id
  description = "Deployment of stage ${var.stage_name}."

  # A new deployment only when something the deployment snapshots changes; hashing only
  # stable values (ids, templates, uris) keeps the plan empty otherwise.
  triggers = {
    redeployment = sha1(jsonencode(var.redeployment_fingerprints))
  }

  # The stage moves to the new deployment before the old one is deleted.
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_158:Access logs carry no secrets; the AWS-managed key is enough and avoids a KMS key per stage.
  #checkov:skip=CKV_AWS_338:Retention is a per-stage choice (access_log_retention_days).
  count = var.enable_access_logs ? 1 : 0

  name              = "API-Gateway-Access-Logs_${var.rest_api_id}/${var.stage_name}"
  retention_in_days = var.access_log_retention_days
  tags              = var.tags
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_120:Responses are per-request results of the function; caching is not wanted.
  #checkov:skip=CKV2_AWS_29:No WAF web ACL: the API is throttled per stage (method settings) instead.
  #checkov:skip=CKV2_AWS_51:Client certificates matter only for HTTP backends; the backend is Lambda.
  #checkov:skip=CKV_AWS_76:Access logging is a per-stage option (enable_access_logs) because it needs an account-level role.
  #checkov:skip=CKV_AWS_73:X-Ray tracing is a per-stage option (xray_tracing_enabled).
  rest_api_id          = var.rest_api_id
  stage_name           = var.stage_name
  description          = var.description
  deployment_id        = aws_api_gateway_deployment.this.id
  variables            = var.variables
  xray_tracing_enabled = var.xray_tracing_enabled
  tags                 = var.tags

  dynamic "access_log_settings" {
    for_each = var.enable_access_logs ? [1] : []
    content {
      destination_arn = aws_cloudwatch_log_group.access[0].arn
      format          = var.access_log_format
    }
  }
}

resource "aws_api_gateway_method_settings" "this" {
  #checkov:skip=CKV_AWS_225:Caching is not wanted, see the stage.
  #checkov:skip=CKV2_AWS_4:The logging level is a per-stage option (logging_level) because it needs an account-level role.
  rest_api_id = var.rest_api_id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    throttling_burst_limit = var.throttling_burst_limit
    throttling_rate_limit  = var.throttling_rate_limit
    logging_level          = var.logging_level
    metrics_enabled        = var.metrics_enabled
    data_trace_enabled     = var.data_trace_enabled
  }
}
