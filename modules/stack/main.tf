# The composition of one stage: function and alias -> REST API and methods -> integrations,
# permissions and CORS preflights -> deployment and stage -> optional custom domain. This is
# the only module that calls the others; the per-stage root rendered by orch calls it once,
# with the providers (the stage's region, and us-east-1 for an EDGE domain's certificate)
# and the backend.

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
      cors                 = r.cors
    }
  ]
}

module "cors" {
  source = "../cors"

  rest_api_id  = module.rest_api.rest_api_id
  resource_ids = module.rest_api.resource_ids
  preflights   = var.api.preflights
  error_cors   = var.api.error_cors
}

module "stage" {
  source = "../stage"

  rest_api_id               = module.rest_api.rest_api_id
  stage_name                = var.stage_name
  description               = var.stage.description
  redeployment_fingerprints = merge(module.integration.fingerprints, module.cors.fingerprints)
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

module "domain" {
  source = "../domain"
  count  = var.domain == null ? 0 : 1

  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  domain_name        = var.domain.name
  base_path          = var.domain.base_path
  endpoint_type      = var.domain.endpoint_type
  security_policy    = var.domain.security_policy
  certificate_arn    = var.domain.certificate_arn
  create_certificate = var.domain.create_certificate
  hosted_zone        = var.domain.hosted_zone
  rest_api_id        = module.rest_api.rest_api_id
  stage_name         = module.stage.stage_name
  tags               = var.tags
}
