mock_provider "aws" {}

variables {
  name = "orch-test-dev"
  routes = [
    { method = "POST", path = "/" },
    { method = "GET", path = "/users/{id}/orders", request_parameters = { "method.request.path.id" = true } },
    { method = "DELETE", path = "/users/{id}" },
    { method = "ANY", path = "/{proxy+}" },
  ]
}

run "nested_resources_are_created_once_per_prefix_under_their_parent" {
  command = apply

  assert {
    condition     = toset(keys(aws_api_gateway_resource.level_1)) == toset(["/users", "/{proxy+}"]) && keys(aws_api_gateway_resource.level_2) == ["/users/{id}"] && keys(aws_api_gateway_resource.level_3) == ["/users/{id}/orders"]
    error_message = "Each distinct path prefix must get exactly one resource at its depth."
  }

  assert {
    condition     = aws_api_gateway_resource.level_3["/users/{id}/orders"].parent_id == aws_api_gateway_resource.level_2["/users/{id}"].id && aws_api_gateway_resource.level_2["/users/{id}"].parent_id == aws_api_gateway_resource.level_1["/users"].id && aws_api_gateway_resource.level_1["/users"].parent_id == aws_api_gateway_rest_api.this.root_resource_id
    error_message = "Each resource must hang off the resource of its parent path."
  }

  assert {
    condition     = aws_api_gateway_resource.level_3["/users/{id}/orders"].path_part == "orders" && length(aws_api_gateway_resource.level_4) == 0
    error_message = "The path part must be the last segment and no deeper levels may be created."
  }

  assert {
    condition     = output.routes["POST /"].resource_id == aws_api_gateway_rest_api.this.root_resource_id && output.routes["GET /users/{id}/orders"].resource_path == "/users/{id}/orders" && output.routes["GET /users/{id}/orders"].http_method == "GET"
    error_message = "The routes output must map route keys to their method's resource, HTTP method and path."
  }

  assert {
    condition     = aws_api_gateway_method.this["GET /users/{id}/orders"].request_parameters["method.request.path.id"] && aws_api_gateway_method.this["POST /"].authorization == "NONE"
    error_message = "Methods must carry their request parameters and authorization NONE."
  }
}

run "paths_deeper_than_8_segments_are_rejected" {
  command = plan
  variables {
    routes = [{ method = "GET", path = "/a/b/c/d/e/f/g/h/i" }]
  }
  expect_failures = [var.routes]
}

run "unknown_endpoint_type_is_rejected" {
  command = plan
  variables {
    endpoint_type = "GLOBAL"
  }
  expect_failures = [var.endpoint_type]
}

run "trailing_slash_is_rejected" {
  command = plan
  variables {
    routes = [{ method = "GET", path = "/users/" }]
  }
  expect_failures = [var.routes]
}
