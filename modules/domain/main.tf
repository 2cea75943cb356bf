# A custom domain name for one REST API stage: the TLS certificate (an existing ACM ARN, or
# one requested here and validated through DNS records in a Route 53 hosted zone), the API
# Gateway domain name, the base path mapping to the stage and the alias record that points
# the name at API Gateway. It creates no hosted zone (it is looked up) and no API or stage.
#
# The certificate must be in us-east-1 for an EDGE domain (CloudFront) and in the stage's
# region for a REGIONAL one, so there are two certificate resources, one per provider, and
# only the one the endpoint type needs is created.

locals {
  edge            = var.endpoint_type == "EDGE"
  zone_id         = var.hosted_zone == null ? null : data.aws_route53_zone.this[0].zone_id
  new_certificate = var.create_certificate ? one(concat(aws_acm_certificate.regional, aws_acm_certificate.edge)) : null

  # Keyed by the names requested (known at plan time), valued from what ACM answers: the
  # certificate's validation options are only known once it exists.
  validation_options = var.create_certificate ? {
    for o in local.new_certificate.domain_validation_options : o.domain_name => o
  } : {}

  certificate_arn = var.create_certificate ? one(concat(
    aws_acm_certificate_validation.regional[*].certificate_arn,
    aws_acm_certificate_validation.edge[*].certificate_arn,
  )) : var.certificate_arn

  target_domain_name = local.edge ? aws_api_gateway_domain_name.this.cloudfront_domain_name : aws_api_gateway_domain_name.this.regional_domain_name
  target_zone_id     = local.edge ? aws_api_gateway_domain_name.this.cloudfront_zone_id : aws_api_gateway_domain_name.this.regional_zone_id
}

data "aws_route53_zone" "this" {
  count = var.hosted_zone == null ? 0 : 1

  name         = var.hosted_zone
  private_zone = false
}

resource "aws_acm_certificate" "regional" {
  count = var.create_certificate && !local.edge ? 1 : 0

  domain_name       = var.domain_name
  validation_method = "DNS"
  tags              = var.tags

  # A replaced certificate is issued before the domain name lets go of the old one.
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_acm_certificate" "edge" {
  count    = var.create_certificate && local.edge ? 1 : 0
  provider = aws.us_east_1

  domain_name       = var.domain_name
  validation_method = "DNS"
  tags              = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  for_each = var.create_certificate ? toset([var.domain_name]) : toset([])

  zone_id         = local.zone_id
  name            = local.validation_options[each.key].resource_record_name
  type            = local.validation_options[each.key].resource_record_type
  records         = [local.validation_options[each.key].resource_record_value]
  ttl             = 60
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "regional" {
  count = length(aws_acm_certificate.regional)

  certificate_arn         = aws_acm_certificate.regional[0].arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

resource "aws_acm_certificate_validation" "edge" {
  count    = length(aws_acm_certificate.edge)
  provider = aws.us_east_1

  certificate_arn         = aws_acm_certificate.edge[0].arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

resource "aws_api_gateway_domain_name" "this" {
  domain_name              = var.domain_name
  security_policy          = var.security_policy
  certificate_arn          = local.edge ? local.certificate_arn : null
  regional_certificate_arn = local.edge ? null : local.certificate_arn
  tags                     = var.tags

  endpoint_configuration {
    types = [var.endpoint_type]
  }
}

resource "aws_api_gateway_base_path_mapping" "this" {
  api_id      = var.rest_api_id
  stage_name  = var.stage_name
  domain_name = aws_api_gateway_domain_name.this.domain_name
  base_path   = var.base_path == "" ? null : var.base_path
}

resource "aws_route53_record" "alias" {
  count = var.hosted_zone == null ? 0 : 1

  zone_id = local.zone_id
  name    = var.domain_name
  type    = "A"

  alias {
    name                   = local.target_domain_name
    zone_id                = local.target_zone_id
    evaluate_target_health = false
  }
}
