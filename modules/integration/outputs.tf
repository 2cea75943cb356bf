output "integration_ids" {
  description = "Map of route key (\"POST /\") to the ID of its integration."
  value       = { for k, i in aws_api_gateway_integration.this : k => i.id }
}

output "source_arns" {
  description = "Map of route key to the execute-api source ARN its Lambda permission allows."
  value       = local.source_arns
}

output "fingerprints" {
  description = "Map of route key to a SHA-1 of everything a deployment snapshots for that route (method, integration, URI, templates, passthrough, timeout, responses); feed it to modules/stage redeployment_fingerprints."
  value = {
    for k, r in local.routes : k => sha1(jsonencode(merge({
      method_id            = var.methods[k].method_id
      request_parameters   = var.methods[k].request_parameters
      integration_id       = aws_api_gateway_integration.this[k].id
      integration_type     = r.integration_type
      uri                  = var.alias_invoke_arn
      request_templates    = local.request_templates[k]
      passthrough_behavior = r.integration_type == "AWS" ? r.passthrough_behavior : null
      timeout_milliseconds = r.timeout_milliseconds
      responses = [
        for rk, resp in local.responses : {
          method_response_id      = aws_api_gateway_method_response.this[rk].id
          integration_response_id = aws_api_gateway_integration_response.this[rk].id
          status_code             = resp.status_code
          selection_pattern       = resp.selection_pattern
          response_templates      = resp.response_templates
        } if resp.route == k
      ]
      },
      # Only with CORS, so a route without it keeps the fingerprint it had before CORS existed.
      length(local.cors_headers[k]) > 0 ? { cors = local.cors_headers[k] } : {},
    )))
  }
}
