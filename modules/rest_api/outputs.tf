output "rest_api_id" {
  description = "ID of the REST API."
  value       = aws_api_gateway_rest_api.this.id
}

output "root_resource_id" {
  description = "ID of the API's root resource \"/\"."
  value       = aws_api_gateway_rest_api.this.root_resource_id
}

output "execution_arn" {
  description = "Execution ARN of the API, the prefix of the source ARN in Lambda permissions."
  value       = aws_api_gateway_rest_api.this.execution_arn
}

output "resource_ids" {
  description = "Map of resource path (\"/\", \"/users\", \"/users/{id}\", ...) to API Gateway resource ID."
  value       = local.resource_ids
}

output "routes" {
  description = "Map of route key (\"POST /\") to its method: resource_id, http_method, resource_path, method_id and request_parameters."
  value = {
    for k, m in aws_api_gateway_method.this : k => {
      resource_id        = m.resource_id
      http_method        = m.http_method
      resource_path      = local.route_map[k].path
      method_id          = m.id
      request_parameters = local.route_map[k].request_parameters
    }
  }
}
