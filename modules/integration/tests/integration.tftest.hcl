# Fixed ids so that fingerprints are comparable across runs.
mock_provider "aws" {
  mock_resource "aws_api_gateway_integration" {
    defaults = { id = "agi-abc123-root-POST" }
  }
  mock_resource "aws_api_gateway_method_response" {
    defaults = { id = "agmr-abc123-root-POST" }
  }
  mock_resource "aws_api_gateway_integration_response" {
    defaults = { id = "agir-abc123-root-POST" }
  }
}

variables {
  rest_api_id      = "abc123"
  execution_arn    = "arn:aws:execute-api:ap-northeast-2:123456789012:abc123"
  function_name    = "orch-test-dev"
  alias_name       = "dev"
  alias_invoke_arn = "arn:aws:apigateway:ap-northeast-2:lambda:path/2015-03-31/functions/arn:aws:lambda:ap-northeast-2:123456789012:function:orch-test-dev:dev/invocations"
  methods = {
    "POST /"          = { resource_id = "root", http_method = "POST", resource_path = "/", method_id = "agm-abc123-root-POST" }
    "GET /items/{id}" = { resource_id = "items-id", http_method = "GET", resource_path = "/items/{id}", method_id = "agm-abc123-items-id-GET" }
    "ANY /{proxy+}"   = { resource_id = "proxy", http_method = "ANY", resource_path = "/{proxy+}", method_id = "agm-abc123-proxy-ANY" }
  }
  routes = [
    {
      method            = "POST"
      path              = "/"
      request_templates = { "application/json" = "$input.json('$')" }
      responses = [
        { status_code = "200" },
        { status_code = "400", selection_pattern = ".*\\[BadRequest\\].*" },
      ]
    },
    { method = "GET", path = "/items/{id}" },
    { method = "ANY", path = "/{proxy+}", integration_type = "AWS_PROXY" },
  ]
}

run "baseline" {
  command = apply

  assert {
    condition     = aws_api_gateway_integration.this["POST /"].uri == var.alias_invoke_arn && aws_api_gateway_integration.this["POST /"].type == "AWS" && aws_api_gateway_integration.this["POST /"].integration_http_method == "POST"
    error_message = "AWS routes must integrate non-proxy with POST to the alias invoke ARN."
  }

  assert {
    condition     = strcontains(aws_api_gateway_integration.this["GET /items/{id}"].request_templates["application/json"], "\"body-json\" : $input.json('$')") && strcontains(aws_api_gateway_integration.this["GET /items/{id}"].request_templates["application/json"], "\"resource-path\" : \"$context.resourcePath\"")
    error_message = "A route without request_templates must get the Method Request passthrough template."
  }

  assert {
    condition     = aws_api_gateway_integration.this["ANY /{proxy+}"].type == "AWS_PROXY" && aws_api_gateway_integration.this["ANY /{proxy+}"].request_templates == null && !contains(keys(aws_api_gateway_integration_response.this), "ANY /{proxy+} 200")
    error_message = "AWS_PROXY routes must have no templates and no integration responses."
  }

  assert {
    condition     = aws_api_gateway_integration_response.this["POST / 200"].selection_pattern == null && aws_api_gateway_integration_response.this["POST / 400"].selection_pattern == ".*\\[BadRequest\\].*"
    error_message = "The default response must have no selection pattern and the others their own."
  }

  assert {
    condition     = aws_lambda_permission.this["GET /items/{id}"].source_arn == "${var.execution_arn}/*/GET/items/*" && aws_lambda_permission.this["ANY /{proxy+}"].source_arn == "${var.execution_arn}/*/*/*" && aws_lambda_permission.this["POST /"].qualifier == "dev"
    error_message = "Permissions must be scoped to the route's method and path, with path parameters as wildcards, on the alias."
  }
}

run "same_inputs_same_fingerprints" {
  command = apply

  assert {
    condition     = output.fingerprints == run.baseline.fingerprints
    error_message = "Fingerprints must be stable when nothing changes, or every plan would redeploy."
  }
}

run "changed_template_changes_only_its_route_fingerprint" {
  command = apply
  variables {
    routes = [
      {
        method            = "POST"
        path              = "/"
        request_templates = { "application/json" = "{\"v\": 2}" }
        responses = [
          { status_code = "200" },
          { status_code = "400", selection_pattern = ".*\\[BadRequest\\].*" },
        ]
      },
      { method = "GET", path = "/items/{id}" },
      { method = "ANY", path = "/{proxy+}", integration_type = "AWS_PROXY" },
    ]
  }

  assert {
    condition     = output.fingerprints["POST /"] != run.baseline.fingerprints["POST /"] && output.fingerprints["GET /items/{id}"] == run.baseline.fingerprints["GET /items/{id}"]
    error_message = "A template change must change that route's fingerprint and no other."
  }
}

run "aws_route_without_default_response_is_rejected" {
  command = plan
  variables {
    routes = [{ method = "POST", path = "/", responses = [{ status_code = "400", selection_pattern = ".*" }] }]
  }
  expect_failures = [var.routes]
}

run "cors_routes_carry_access_control_headers_on_every_response" {
  command = apply
  variables {
    routes = [
      {
        method = "POST"
        path   = "/"
        responses = [
          { status_code = "200" },
          { status_code = "400", selection_pattern = ".*\\[BadRequest\\].*" },
        ]
        cors = { allow_origin = "https://app.example.com", expose_headers = ["X-Request-Id"], allow_credentials = true }
      },
      { method = "GET", path = "/items/{id}" },
      { method = "ANY", path = "/{proxy+}", integration_type = "AWS_PROXY", cors = { allow_origin = "*" } },
    ]
  }

  assert {
    condition     = aws_api_gateway_integration_response.this["POST / 400"].response_parameters["method.response.header.Access-Control-Allow-Origin"] == "'https://app.example.com'" && aws_api_gateway_integration_response.this["POST / 200"].response_parameters["method.response.header.Access-Control-Allow-Credentials"] == "'true'" && aws_api_gateway_method_response.this["POST / 200"].response_parameters["method.response.header.Access-Control-Expose-Headers"] == false
    error_message = "Every response of a CORS route must declare and map the Access-Control headers."
  }

  assert {
    condition     = aws_api_gateway_integration_response.this["GET /items/{id} 200"].response_parameters == null
    error_message = "A route without CORS must get no Access-Control headers."
  }

  assert {
    condition     = output.fingerprints["POST /"] != run.baseline.fingerprints["POST /"] && output.fingerprints["GET /items/{id}"] == run.baseline.fingerprints["GET /items/{id}"] && output.fingerprints["ANY /{proxy+}"] == run.baseline.fingerprints["ANY /{proxy+}"]
    error_message = "Turning CORS on must redeploy for that route only (an AWS_PROXY function sets its own headers)."
  }
}
