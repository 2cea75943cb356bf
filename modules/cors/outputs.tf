output "preflight_method_ids" {
  description = "Map of resource path to the ID of its OPTIONS (preflight) method."
  value       = { for p, m in aws_api_gateway_method.preflight : p => m.id }
}

output "fingerprints" {
  description = "Map of \"OPTIONS <path>\" (and \"gateway_responses\") to a SHA-1 of what a deployment snapshots of it; merge it into modules/stage redeployment_fingerprints. Empty without CORS, so a stage without CORS keeps its fingerprints."
  value = merge(
    {
      for p, pre in local.preflights : "OPTIONS ${p}" => sha1(jsonencode({
        method_id               = aws_api_gateway_method.preflight[p].id
        integration_id          = aws_api_gateway_integration.preflight[p].id
        method_response_id      = aws_api_gateway_method_response.preflight[p].id
        integration_response_id = aws_api_gateway_integration_response.preflight[p].id
        headers                 = local.preflight_headers[p]
      }))
    },
    var.error_cors == null ? {} : {
      gateway_responses = sha1(jsonencode({
        ids     = [for t in local.error_types : aws_api_gateway_gateway_response.cors[t].id]
        headers = local.error_headers
      }))
    },
  )
}
