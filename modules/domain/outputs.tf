output "domain_name" {
  description = "The custom domain name."
  value       = aws_api_gateway_domain_name.this.domain_name
}

output "url" {
  description = "The stage's URL on the custom domain: https://<domain>[/<base_path>]."
  value       = "https://${aws_api_gateway_domain_name.this.domain_name}${var.base_path == "" ? "" : "/${var.base_path}"}"
}

output "base_path" {
  description = "The base path mapped to the stage (\"\" for the whole domain)."
  value       = var.base_path
}

output "target_domain_name" {
  description = "The host name DNS must point the domain at: the regional or CloudFront domain name API Gateway assigned."
  value       = local.target_domain_name
}

output "target_zone_id" {
  description = "The Route 53 zone ID of target_domain_name, for an alias record."
  value       = local.target_zone_id
}

output "certificate_arn" {
  description = "ARN of the certificate the domain serves (validated, when created here)."
  value       = local.certificate_arn
}
