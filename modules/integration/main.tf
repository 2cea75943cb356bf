# The Lambda integration of every route of a REST API: one call of this module integrates
# the whole route list (no for_each over the module), including method and integration
# responses for non-proxy routes and a per-route Lambda permission on the stage alias.
# It creates no methods (modules/rest_api) and no deployment (modules/stage): it outputs a
# per-route fingerprint that modules/stage hashes to decide when to redeploy.

locals {
  # The API Gateway console's "Method Request passthrough" template, kept in one file that
  # orch (and anyone reading the module) uses as well.
  default_request_templates = coalesce(var.default_request_templates, {
    "application/json" = file("${path.module}/templates/passthrough.vtl")
  })

  routes = { for r in var.routes : "${r.method} ${r.path}" => r }

  request_templates = {
    for k, r in local.routes : k => (
      r.integration_type != "AWS" ? null :
      r.request_templates == null ? local.default_request_templates :
      length(r.request_templates) > 0 ? r.request_templates : null
    )
  }

  responses = merge([
    for k, r in local.routes : {
      for resp in r.responses : "${k} ${resp.status_code}" => merge(resp, { route = k })
    } if r.integration_type == "AWS"
  ]...)

  # CORS headers every response of a non-proxy route carries (name -> static value); an
  # AWS_PROXY function sets its own headers, which pass through.
  cors_headers = {
    for k, r in local.routes : k => r.cors == null || r.integration_type != "AWS" ? {} : merge(
      { "Access-Control-Allow-Origin" = r.cors.allow_origin },
      length(r.cors.expose_headers) > 0 ? { "Access-Control-Expose-Headers" = join(",", r.cors.expose_headers) } : {},
      r.cors.allow_credentials ? { "Access-Control-Allow-Credentials" = "true" } : {},
    )
  }

  # Resource paths in the source ARN: path parameters become wildcards, "ANY" becomes "*".
  source_arns = {
    for k, r in local.routes : k => format(
      "%s/*/%s%s",
      var.execution_arn,
      r.method == "ANY" ? "*" : r.method,
      replace(r.path, "/\\{[^}/]+\\}/", "*"),
    )
  }
}

# Integrations and responses are updated in place, never replaced (no replace_triggered_by):
# the deployment in modules/stage is create_before_destroy, Terraform forces that onto
# everything it depends on, and creating an integration before deleting the old one with
# the same identity (API, resource, HTTP method) would leave the method without one.
resource "aws_api_gateway_integration" "this" {
  for_each = local.routes

  rest_api_id             = var.rest_api_id
  resource_id             = var.methods[each.key].resource_id
  http_method             = var.methods[each.key].http_method
  type                    = each.value.integration_type
  integration_http_method = "POST"
  uri                     = var.alias_invoke_arn
  timeout_milliseconds    = each.value.timeout_milliseconds
  request_templates       = local.request_templates[each.key]
  passthrough_behavior    = each.value.integration_type == "AWS" ? each.value.passthrough_behavior : null
}

resource "aws_api_gateway_method_response" "this" {
  for_each = local.responses

  rest_api_id         = var.rest_api_id
  resource_id         = var.methods[each.value.route].resource_id
  http_method         = var.methods[each.value.route].http_method
  status_code         = each.value.status_code
  response_parameters = length(local.cors_headers[each.value.route]) > 0 ? { for name in keys(local.cors_headers[each.value.route]) : "method.response.header.${name}" => false } : null
}

resource "aws_api_gateway_integration_response" "this" {
  for_each = local.responses

  rest_api_id         = var.rest_api_id
  resource_id         = var.methods[each.value.route].resource_id
  http_method         = var.methods[each.value.route].http_method
  status_code         = aws_api_gateway_method_response.this[each.key].status_code
  selection_pattern   = each.value.selection_pattern == "" ? null : each.value.selection_pattern
  response_templates  = length(each.value.response_templates) > 0 ? each.value.response_templates : null
  response_parameters = length(local.cors_headers[each.value.route]) > 0 ? { for name, value in local.cors_headers[each.value.route] : "method.response.header.${name}" => "'${value}'" } : null

  # An integration response can only be put once the method's integration exists.
  depends_on = [aws_api_gateway_integration.this]
}

resource "aws_lambda_permission" "this" {
  for_each = local.routes

  statement_id  = "apigateway-${lower(each.value.method)}-${substr(sha1(each.key), 0, 16)}"
  action        = "lambda:InvokeFunction"
  function_name = var.function_name
  qualifier     = var.alias_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = local.source_arns[each.key]
}
