output "invoke_url" {
  description = "URL that invokes the stage on AWS. In the sandbox orch serves the stage from its local gateway instead."
  value       = module.stage.invoke_url
}

output "rest_api_id" {
  description = "ID of the REST API."
  value       = module.rest_api.rest_api_id
}

output "function_name" {
  description = "Name of the Lambda function."
  value       = module.lambda.function_name
}

output "function_arn" {
  description = "Unqualified ARN of the Lambda function."
  value       = module.lambda.function_arn
}

output "function_version" {
  description = "Function version the stage's alias points at (an earlier one while the stage is rolled back)."
  value       = module.lambda.alias_function_version
}

output "published_version" {
  description = "Function version the latest apply published (the alias's unless the stage is rolled back)."
  value       = module.lambda.function_version
}

output "alias_name" {
  description = "Name of the function alias the API invokes (equals the stage name)."
  value       = module.lambda.alias_name
}

output "alias_arn" {
  description = "ARN of the function alias the API invokes."
  value       = module.lambda.alias_arn
}

output "stage_name" {
  description = "Name of the API Gateway stage."
  value       = module.stage.stage_name
}

output "deployment_id" {
  description = "ID of the API deployment the stage serves."
  value       = module.stage.deployment_id
}

output "execution_arn" {
  description = "Execution ARN of the REST API."
  value       = module.rest_api.execution_arn
}

output "log_group_name" {
  description = "Name of the function's CloudWatch log group."
  value       = module.lambda.log_group_name
}

output "custom_domain_url" {
  description = "The stage's URL on its custom domain (https://<domain>[/<base_path>]), or null without one."
  value       = one(module.domain[*].url)
}

output "custom_domain_target" {
  description = "The host name the custom domain points at (API Gateway's regional or CloudFront name), or null without one."
  value       = one(module.domain[*].target_domain_name)
}
