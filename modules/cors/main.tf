# CORS of a REST API: for each resource path with CORS on, an OPTIONS method whose MOCK
# integration answers the browser's preflight, and the API's DEFAULT_4XX and DEFAULT_5XX
# gateway responses carrying Access-Control headers, so API Gateway's own errors (a 403 for
# an unknown path, a 500) stay readable by the page. It does not touch the real methods
# (modules/integration adds their headers) and deploys nothing: its fingerprints feed
# modules/stage like modules/integration's.

locals {
  preflights = { for p in var.preflights : p.path => p }

  # method.response.header.<name> -> 'value' of every preflight (only the headers that apply).
  preflight_headers = {
    for path, p in local.preflights : path => merge(
      {
        "Access-Control-Allow-Origin"  = p.allow_origin
        "Access-Control-Allow-Methods" = join(",", p.allow_methods)
        "Access-Control-Allow-Headers" = join(",", p.allow_headers)
      },
      length(p.expose_headers) > 0 ? { "Access-Control-Expose-Headers" = join(",", p.expose_headers) } : {},
      p.max_age != null ? { "Access-Control-Max-Age" = tostring(p.max_age) } : {},
      p.allow_credentials ? { "Access-Control-Allow-Credentials" = "true" } : {},
    )
  }

  error_headers = var.error_cors == null ? {} : merge(
    { "Access-Control-Allow-Origin" = var.error_cors.allow_origin },
    length(var.error_cors.allow_headers) > 0 ? { "Access-Control-Allow-Headers" = join(",", var.error_cors.allow_headers) } : {},
    length(var.error_cors.expose_headers) > 0 ? { "Access-Control-Expose-Headers" = join(",", var.error_cors.expose_headers) } : {},
    var.error_cors.allow_credentials ? { "Access-Control-Allow-Credentials" = "true" } : {},
  )

  error_types = var.error_cors == null ? [] : ["DEFAULT_4XX", "DEFAULT_5XX"]
}

resource "aws_api_gateway_method" "preflight" {
  #checkov:skip=CKV_AWS_59:Browsers send CORS preflights without credentials; the OPTIONS method must be open.
  #checkov:skip=CKV2_AWS_53:A MOCK preflight has no request to validate.
  for_each = local.preflights

  rest_api_id   = var.rest_api_id
  resource_id   = var.resource_ids[each.key]
  http_method   = "OPTIONS"
  authorization = "NONE"
}

resource "aws_api_gateway_integration" "preflight" {
  for_each = local.preflights

  rest_api_id          = var.rest_api_id
  resource_id          = aws_api_gateway_method.preflight[each.key].resource_id
  http_method          = aws_api_gateway_method.preflight[each.key].http_method
  type                 = "MOCK"
  passthrough_behavior = "WHEN_NO_MATCH"
  request_templates    = { "application/json" = "{\"statusCode\": 200}" }
}

resource "aws_api_gateway_method_response" "preflight" {
  for_each = local.preflights

  rest_api_id         = var.rest_api_id
  resource_id         = aws_api_gateway_method.preflight[each.key].resource_id
  http_method         = aws_api_gateway_method.preflight[each.key].http_method
  status_code         = "200"
  response_parameters = { for name in keys(local.preflight_headers[each.key]) : "method.response.header.${name}" => true }
}

resource "aws_api_gateway_integration_response" "preflight" {
  for_each = local.preflights

  rest_api_id         = var.rest_api_id
  resource_id         = aws_api_gateway_method.preflight[each.key].resource_id
  http_method         = aws_api_gateway_method.preflight[each.key].http_method
  status_code         = aws_api_gateway_method_response.preflight[each.key].status_code
  response_parameters = { for name, value in local.preflight_headers[each.key] : "method.response.header.${name}" => "'${value}'" }
  response_templates  = { "application/json" = "" }

  depends_on = [aws_api_gateway_integration.preflight]
}

# The body template is AWS's default one; only the headers are added.
resource "aws_api_gateway_gateway_response" "cors" {
  for_each = toset(local.error_types)

  rest_api_id         = var.rest_api_id
  response_type       = each.key
  response_parameters = { for name, value in local.error_headers : "gatewayresponse.header.${name}" => "'${value}'" }
  response_templates  = { "application/json" = "{\"message\":$context.error.messageString}" }
}
