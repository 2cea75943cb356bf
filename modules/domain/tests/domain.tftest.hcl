mock_provider "aws" {
  mock_data "aws_route53_zone" {
    defaults = {
      zone_id = "Z0123456789EXAMPLE"
    }
  }

  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:ap-northeast-2:123456789012:certificate/regional-1"
      domain_validation_options = [{
        domain_name           = "api.example.com"
        resource_record_name  = "_x1.api.example.com."
        resource_record_type  = "CNAME"
        resource_record_value = "_x2.acm-validations.aws."
      }]
    }
  }

  mock_resource "aws_acm_certificate_validation" {
    defaults = {
      certificate_arn = "arn:aws:acm:ap-northeast-2:123456789012:certificate/regional-1"
    }
  }

  mock_resource "aws_api_gateway_domain_name" {
    defaults = {
      regional_domain_name   = "d-abc.execute-api.ap-northeast-2.amazonaws.com"
      regional_zone_id       = "ZREGIONAL"
      cloudfront_domain_name = "d111.cloudfront.net"
      cloudfront_zone_id     = "Z2FDTNDATAQYW2"
    }
  }
}

mock_provider "aws" {
  alias = "us_east_1"

  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:us-east-1:123456789012:certificate/edge-1"
      domain_validation_options = [{
        domain_name           = "api.example.com"
        resource_record_name  = "_y1.api.example.com."
        resource_record_type  = "CNAME"
        resource_record_value = "_y2.acm-validations.aws."
      }]
    }
  }

  mock_resource "aws_acm_certificate_validation" {
    defaults = {
      certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/edge-1"
    }
  }
}

variables {
  domain_name        = "api.example.com"
  base_path          = "v1"
  create_certificate = true
  hosted_zone        = "example.com"
  rest_api_id        = "abc123"
  stage_name         = "prod"
}

run "regional_domain_with_a_new_certificate" {
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  command = apply

  assert {
    condition     = length(aws_acm_certificate.regional) == 1 && length(aws_acm_certificate.edge) == 0 && aws_acm_certificate.regional[0].validation_method == "DNS"
    error_message = "A REGIONAL domain must request its certificate with DNS validation in the stage's region."
  }

  assert {
    condition     = aws_route53_record.validation["api.example.com"].name == "_x1.api.example.com." && aws_route53_record.validation["api.example.com"].zone_id == "Z0123456789EXAMPLE" && aws_route53_record.validation["api.example.com"].records == toset(["_x2.acm-validations.aws."])
    error_message = "The certificate's validation record must be written into the hosted zone."
  }

  assert {
    condition     = aws_api_gateway_domain_name.this.regional_certificate_arn == "arn:aws:acm:ap-northeast-2:123456789012:certificate/regional-1" && aws_api_gateway_domain_name.this.security_policy == "TLS_1_2" && one(aws_api_gateway_domain_name.this.endpoint_configuration[0].types) == "REGIONAL"
    error_message = "The domain name must use the validated certificate as its regional certificate, with TLS 1.2."
  }

  assert {
    condition     = aws_api_gateway_base_path_mapping.this.base_path == "v1" && aws_api_gateway_base_path_mapping.this.stage_name == "prod" && aws_api_gateway_base_path_mapping.this.api_id == "abc123"
    error_message = "The base path must map to the stage of the API."
  }

  assert {
    condition     = aws_route53_record.alias[0].alias[0].name == "d-abc.execute-api.ap-northeast-2.amazonaws.com" && aws_route53_record.alias[0].alias[0].zone_id == "ZREGIONAL" && aws_route53_record.alias[0].type == "A"
    error_message = "The alias record must point at the regional domain name."
  }

  assert {
    condition     = output.url == "https://api.example.com/v1"
    error_message = "The URL must be https://<domain>/<base_path>."
  }
}

run "edge_domain_requests_its_certificate_in_us_east_1" {
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  command = apply
  variables {
    endpoint_type = "EDGE"
    base_path     = ""
  }

  assert {
    condition     = length(aws_acm_certificate.edge) == 1 && length(aws_acm_certificate.regional) == 0 && aws_api_gateway_domain_name.this.certificate_arn == "arn:aws:acm:us-east-1:123456789012:certificate/edge-1" && aws_api_gateway_domain_name.this.regional_certificate_arn == null
    error_message = "An EDGE domain must use a certificate requested through the us-east-1 provider."
  }

  assert {
    condition     = aws_route53_record.alias[0].alias[0].name == "d111.cloudfront.net" && aws_api_gateway_base_path_mapping.this.base_path == null && output.url == "https://api.example.com"
    error_message = "An EDGE alias must point at CloudFront, and an empty base path maps the whole domain."
  }
}

run "existing_certificate_without_a_zone_makes_no_records" {
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  command = apply
  variables {
    create_certificate = false
    certificate_arn    = "arn:aws:acm:ap-northeast-2:123456789012:certificate/mine"
    hosted_zone        = null
  }

  assert {
    condition     = length(aws_acm_certificate.regional) == 0 && length(aws_route53_record.validation) == 0 && length(aws_route53_record.alias) == 0 && aws_api_gateway_domain_name.this.regional_certificate_arn == "arn:aws:acm:ap-northeast-2:123456789012:certificate/mine"
    error_message = "With an existing certificate and no zone, only the domain name and the mapping are made."
  }
}

run "edge_certificate_outside_us_east_1_is_rejected" {
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  command = plan
  variables {
    endpoint_type      = "EDGE"
    create_certificate = false
    certificate_arn    = "arn:aws:acm:eu-west-1:123456789012:certificate/mine"
  }
  expect_failures = [var.certificate_arn]
}

run "base_path_with_a_slash_is_rejected" {
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  command = plan
  variables {
    base_path = "v1/orders"
  }
  expect_failures = [var.base_path]
}

run "create_certificate_without_a_zone_is_rejected" {
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  command = plan
  variables {
    hosted_zone = null
  }
  expect_failures = [var.create_certificate]
}
