output "stage_name" {
  description = "Name of the stage."
  value       = aws_api_gateway_stage.this.stage_name
}

output "invoke_url" {
  description = "URL that invokes the stage on AWS (https://<api-id>.execute-api.<region>.amazonaws.com/<stage>)."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "deployment_id" {
  description = "ID of the deployment the stage serves."
  value       = aws_api_gateway_deployment.this.id
}

output "stage_arn" {
  description = "ARN of the stage."
  value       = aws_api_gateway_stage.this.arn
}

output "stage_execution_arn" {
  description = "Execution ARN of the stage (<api execution ARN>/<stage>)."
  value       = aws_api_gateway_stage.this.execution_arn
}

output "access_log_group_name" {
  description = "Name of the access log group, or null when access logs are disabled."
  value       = one(aws_cloudwatch_log_group.access[*].name)
}
