terraform {
  # 1.7 is the first release whose `terraform test` supports mock_provider.
  required_version = ">= 1.7"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 6.0"
      # A custom EDGE domain's certificate lives in us-east-1 (CloudFront's region).
      configuration_aliases = [aws.us_east_1]
    }
  }
}
