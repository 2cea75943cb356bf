mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      name = "ap-northeast-2"
    }
  }

  # The provider validates the role ARN even against a mock, so give it a real shape.
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/orch-test-dev"
    }
  }

  mock_resource "aws_api_gateway_rest_api" {
    defaults = {
      id            = "abc123"
      execution_arn = "arn:aws:execute-api:ap-northeast-2:123456789012:abc123"
    }
  }

  mock_resource "aws_lambda_alias" {
    defaults = {
      arn        = "arn:aws:lambda:ap-northeast-2:123456789012:function:orch-test-dev:dev"
      invoke_arn = "arn:aws:apigateway:ap-northeast-2:lambda:path/2015-03-31/functions/arn:aws:lambda:ap-northeast-2:123456789012:function:orch-test-dev:dev/invocations"
    }
  }
}

# The us-east-1 provider the rendered root passes for an EDGE domain's certificate.
mock_provider "aws" {
  alias = "us_east_1"
}

variables {
  region     = "ap-northeast-2"
  stage_name = "dev"
  tags       = { project = "orch", stage = "dev" }
  function = {
    name                 = "orch-test-dev"
    handler              = "handler.handler"
    runtime              = "python3.12"
    memory_size          = 128
    timeout              = 10
    environment          = { LOG_LEVEL = "debug" }
    log_retention_days   = 14
    reserved_concurrency = -1
    package = {
      filename         = "/tmp/orch-test.zip"
      s3_bucket        = null
      s3_key           = null
      source_code_hash = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    }
  }
  api = {
    name          = "orch-test-dev"
    description   = "test"
    endpoint_type = "REGIONAL"
    routes = [
      {
        method               = "POST"
        path                 = "/"
        request_parameters   = { "method.request.header.Authorization" = false }
        integration_type     = "AWS"
        request_templates    = { "application/json" = "$input.json('$')" }
        passthrough_behavior = "WHEN_NO_TEMPLATES"
        timeout_milliseconds = 29000
        responses = [
          { status_code = "200", selection_pattern = "", response_templates = {} },
          { status_code = "400", selection_pattern = ".*\\[BadRequest\\].*", response_templates = {} },
        ]
      },
      { method = "GET", path = "/items/{id}" },
    ]
  }
  stage = {
    variables                 = { env = "dev" }
    throttling_burst_limit    = 100
    throttling_rate_limit     = 50
    logging_level             = "OFF"
    metrics_enabled           = false
    data_trace_enabled        = false
    xray_tracing_enabled      = false
    access_log_retention_days = 14
  }
}

run "contract_tfvars_plan" {
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  command = plan

  assert {
    condition     = output.alias_name == "dev" && output.stage_name == "dev" && output.function_name == "orch-test-dev" && output.log_group_name == "/aws/lambda/orch-test-dev"
    error_message = "The stack must name the alias and stage after stage_name and expose the function's names."
  }
}

run "wiring_integrates_every_route_with_the_alias" {
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  command = apply

  assert {
    condition     = output.alias_arn == "arn:aws:lambda:ap-northeast-2:123456789012:function:orch-test-dev:dev" && output.rest_api_id == "abc123" && output.execution_arn == "arn:aws:execute-api:ap-northeast-2:123456789012:abc123" && output.deployment_id != ""
    error_message = "The stack must output the alias ARN, the API and the deployment."
  }
}

run "region_must_match_the_provider" {
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  command = plan
  variables {
    region = "us-east-1"
  }
  expect_failures = [data.aws_region.current]
}

run "cors_preflights_and_error_headers_are_wired_and_redeploy" {
  command = apply
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  variables {
    api = {
      name          = "orch-test-dev"
      endpoint_type = "REGIONAL"
      routes = [
        { method = "POST", path = "/", cors = { allow_origin = "*" } },
        { method = "GET", path = "/items/{id}" },
      ]
      preflights = [{ path = "/", allow_origin = "*", allow_methods = ["OPTIONS", "POST"], allow_headers = ["Content-Type"] }]
      error_cors = { allow_origin = "*" }
    }
  }

  assert {
    condition     = module.cors.preflight_method_ids["/"] != "" && output.deployment_id != ""
    error_message = "The stack must create the preflight of every CORS path."
  }

  assert {
    condition     = toset(keys(module.cors.fingerprints)) == toset(["OPTIONS /", "gateway_responses"])
    error_message = "The preflight and the gateway responses must be fingerprinted for the stage's redeployment."
  }

  assert {
    condition     = output.custom_domain_url == null
    error_message = "Without a domain there is no custom URL."
  }
}

run "domain_maps_the_stage" {
  command = apply
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  variables {
    domain = {
      name            = "api.example.com"
      base_path       = "v1"
      certificate_arn = "arn:aws:acm:ap-northeast-2:123456789012:certificate/mine"
    }
  }

  assert {
    condition     = output.custom_domain_url == "https://api.example.com/v1" && module.domain[0].domain_name == "api.example.com"
    error_message = "A stage with a domain must output its custom URL."
  }
}
