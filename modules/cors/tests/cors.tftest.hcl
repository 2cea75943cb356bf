mock_provider "aws" {}

variables {
  rest_api_id  = "abc123"
  resource_ids = { "/" = "root1", "/items" = "res2" }
  preflights = [
    { path = "/", allow_origin = "*", allow_methods = ["OPTIONS", "POST"], allow_headers = ["Content-Type"] },
    { path = "/items", allow_origin = "https://app.example.com", allow_methods = ["OPTIONS", "GET"], allow_headers = ["Content-Type", "X-Api-Key"], expose_headers = ["X-Request-Id"], max_age = 600, allow_credentials = true },
  ]
  error_cors = { allow_origin = "*", allow_headers = ["Content-Type"] }
}

run "preflights_answer_with_static_headers_from_a_mock" {
  command = apply

  assert {
    condition     = aws_api_gateway_method.preflight["/items"].http_method == "OPTIONS" && aws_api_gateway_method.preflight["/items"].resource_id == "res2" && aws_api_gateway_integration.preflight["/"].type == "MOCK"
    error_message = "Each CORS path must get an OPTIONS method with a MOCK integration on its resource."
  }

  assert {
    condition     = aws_api_gateway_integration_response.preflight["/items"].response_parameters["method.response.header.Access-Control-Allow-Origin"] == "'https://app.example.com'" && aws_api_gateway_integration_response.preflight["/items"].response_parameters["method.response.header.Access-Control-Allow-Methods"] == "'OPTIONS,GET'" && aws_api_gateway_integration_response.preflight["/items"].response_parameters["method.response.header.Access-Control-Max-Age"] == "'600'" && aws_api_gateway_integration_response.preflight["/items"].response_parameters["method.response.header.Access-Control-Allow-Credentials"] == "'true'"
    error_message = "The preflight must answer with the configured headers as static values."
  }

  assert {
    condition     = !contains(keys(aws_api_gateway_integration_response.preflight["/"].response_parameters), "method.response.header.Access-Control-Max-Age") && !contains(keys(aws_api_gateway_method_response.preflight["/"].response_parameters), "method.response.header.Access-Control-Allow-Credentials")
    error_message = "Headers that do not apply (no max_age, no credentials) must be left out."
  }

  assert {
    condition     = toset(keys(aws_api_gateway_gateway_response.cors)) == toset(["DEFAULT_4XX", "DEFAULT_5XX"]) && aws_api_gateway_gateway_response.cors["DEFAULT_4XX"].response_parameters["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"
    error_message = "DEFAULT_4XX and DEFAULT_5XX must carry Access-Control-Allow-Origin."
  }

  assert {
    condition     = toset(keys(output.fingerprints)) == toset(["OPTIONS /", "OPTIONS /items", "gateway_responses"])
    error_message = "Every preflight and the gateway responses must be fingerprinted for redeployment."
  }
}

run "a_changed_header_changes_only_its_fingerprint" {
  command = apply
  variables {
    preflights = [
      { path = "/", allow_origin = "*", allow_methods = ["OPTIONS", "POST"], allow_headers = ["Content-Type", "Authorization"] },
      { path = "/items", allow_origin = "https://app.example.com", allow_methods = ["OPTIONS", "GET"], allow_headers = ["Content-Type", "X-Api-Key"], expose_headers = ["X-Request-Id"], max_age = 600, allow_credentials = true },
    ]
  }

  assert {
    condition     = output.fingerprints["OPTIONS /"] != run.preflights_answer_with_static_headers_from_a_mock.fingerprints["OPTIONS /"] && output.fingerprints["OPTIONS /items"] == run.preflights_answer_with_static_headers_from_a_mock.fingerprints["OPTIONS /items"]
    error_message = "A changed preflight header must change that path's fingerprint and no other."
  }
}

run "without_cors_nothing_is_created" {
  command = plan
  variables {
    preflights = []
    error_cors = null
  }

  assert {
    condition     = length(aws_api_gateway_method.preflight) == 0 && length(aws_api_gateway_gateway_response.cors) == 0 && length(output.fingerprints) == 0
    error_message = "Without CORS the module must create nothing and fingerprint nothing."
  }
}

run "credentials_with_any_origin_are_rejected" {
  command = plan
  variables {
    preflights = [{ path = "/", allow_origin = "*", allow_methods = ["POST"], allow_headers = [], allow_credentials = true }]
  }
  expect_failures = [var.preflights]
}

run "an_origin_with_a_path_is_rejected" {
  command = plan
  variables {
    error_cors = { allow_origin = "https://app.example.com/" }
  }
  expect_failures = [var.error_cors]
}
