terraform {
  # 1.7 is the first release whose `terraform test` supports mock_provider.
  required_version = ">= 1.7"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 6.0"
    }
  }
}
