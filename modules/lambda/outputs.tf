output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "Unqualified ARN of the Lambda function."
  value       = aws_lambda_function.this.arn
}

output "function_version" {
  description = "Version published by the latest apply; the alias points at it unless alias_version pins another."
  value       = aws_lambda_function.this.version
}

output "alias_function_version" {
  description = "Version the per-stage alias points at (the published one, or alias_version)."
  value       = aws_lambda_alias.this.function_version
}

output "alias_name" {
  description = "Name of the per-stage alias (equals the stage name)."
  value       = aws_lambda_alias.this.name
}

output "alias_arn" {
  description = "ARN of the per-stage alias (the function ARN qualified by the alias name)."
  value       = aws_lambda_alias.this.arn
}

output "alias_invoke_arn" {
  description = "API Gateway integration URI that invokes the alias."
  value       = aws_lambda_alias.this.invoke_arn
}

output "log_group_name" {
  description = "Name of the function's CloudWatch log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.this.arn
}
