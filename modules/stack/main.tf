# The composition of one stage: function and alias -> REST API and methods -> integrations
# and permissions -> deployment and stage. This is the only module that calls the others;
# the per-stage root rendered by orch calls it once, with the provider and backend.

data "aws_region" "current" {
  lifecycle {
    postcondition {
      condition     = self.name == var.region
      error_message = "The aws provider targets region ${self.name} but var.region is ${var.region}; render the root with the stage's region."
    }
  }
}

module "lambda" {
  source = "../lambda"

  function_name        = var.function.name
  stage_name           = var.stage_name
  description          = var.function.description
  handler              = var.function.handler
  runtime              = var.function.runtime
  memory_size          = var.function.memory_size
  timeout              = var.function.timeout
  environment          = var.function.environment
  secret_environment   = var.secret_environment
  log_retention_days   = var.function.log_retention_days
  reserved_concurrency = var.function.reserved_concurrency
  tracing_mode         = var.function.tracing_mode
  alias_version        = var.function.alias_version
  package              = var.function.package
  tags                 = var.tags
}

module "rest_api" {
  source = "../rest_api"

  name          = var.api.name
  description   = var.api.description
  endpoint_type = var.api.endpoint_type
  routes = [
    for r in var.api.routes : {
      method             = r.method
      path               = r.path
      request_parameters = r.request_parameters
    }
  ]
  tags = var.tags
}

module "integration" {
  source = "../integration"

  rest_api_id      = module.rest_api.rest_api_id
  execution_arn    = module.rest_api.execution_arn
  methods          = module.rest_api.routes
  function_name    = module.lambda.function_name
  alias_name       = module.lambda.alias_name
  alias_invoke_arn = module.lambda.alias_invoke_arn
  routes = [
    for r in var.api.routes : {
      method               = r.method
      path                 = r.path
      integration_type     = r.integration_type
      request_templates    = r.request_templates
      passthrough_behavior = r.passthrough_behavior
      timeout_milliseconds = r.timeout_milliseconds
      responses            = r.responses
    }
  ]
}

module "stage" {
  source = "../stage"

  rest_api_id               = module.rest_api.rest_api_id
  stage_name                = var.stage_name
  description               = var.stage.description
  redeployment_fingerprints = module.integration.fingerprints
  variables                 = var.stage.variables
  xray_tracing_enabled      = var.stage.xray_tracing_enabled
  throttling_burst_limit    = var.stage.throttling_burst_limit
  throttling_rate_limit     = var.stage.throttling_rate_limit
  logging_level             = var.stage.logging_level
  metrics_enabled           = var.stage.metrics_enabled
  data_trace_enabled        = var.stage.data_trace_enabled
  enable_access_logs        = var.stage.enable_access_logs
  access_log_retention_days = var.stage.access_log_retention_days
  tags                      = var.tags
}
