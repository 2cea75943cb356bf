variable "domain_name" {
  description = "The custom domain name, such as api.example.com."
  type        = string

  validation {
    condition     = length(var.domain_name) <= 253 && can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z][a-z0-9-]*[a-z0-9]$", var.domain_name))
    error_message = "The domain_name must be a lower-case host name such as api.example.com: labels of letters, digits and inner hyphens, no trailing dot."
  }
}

variable "base_path" {
  description = "The first path segment that selects this stage on the domain (https://<domain>/<base_path>/...); \"\" maps the whole domain to the stage."
  type        = string
  default     = ""

  validation {
    condition     = var.base_path == "" || can(regex("^[A-Za-z0-9._~-]+$", var.base_path))
    error_message = "The base_path must be empty or one path segment of letters, digits and ._~- (no slashes)."
  }
}

variable "endpoint_type" {
  description = "REGIONAL (certificate in the stage's region) or EDGE (CloudFront; certificate in us-east-1)."
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "EDGE"], var.endpoint_type)
    error_message = "The endpoint_type must be REGIONAL or EDGE."
  }
}

variable "security_policy" {
  description = "Minimum TLS version the domain accepts: TLS_1_2 (recommended) or TLS_1_0."
  type        = string
  default     = "TLS_1_2"

  validation {
    condition     = contains(["TLS_1_2", "TLS_1_0"], var.security_policy)
    error_message = "The security_policy must be TLS_1_2 or TLS_1_0."
  }
}

variable "certificate_arn" {
  description = "ARN of an existing ACM certificate for the domain; null when create_certificate is true. An EDGE domain's certificate must be in us-east-1."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$", var.certificate_arn))
    error_message = "The certificate_arn must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)."
  }

  validation {
    condition     = var.certificate_arn == null || var.endpoint_type != "EDGE" || split(":", coalesce(var.certificate_arn, "a:b:c:d"))[3] == "us-east-1"
    error_message = "An EDGE domain needs a certificate in us-east-1 (CloudFront's region)."
  }
}

variable "create_certificate" {
  description = "Request a certificate for the domain in ACM and validate it through DNS records in hosted_zone."
  type        = bool
  default     = false

  validation {
    condition     = var.create_certificate != (var.certificate_arn != null)
    error_message = "Set either certificate_arn or create_certificate = true, exactly one."
  }

  validation {
    condition     = !var.create_certificate || var.hosted_zone != null
    error_message = "The create_certificate option needs hosted_zone, the Route 53 zone its DNS validation records go to."
  }
}

variable "hosted_zone" {
  description = "Name of the public Route 53 hosted zone the domain lives in (looked up, not created): it gets the validation records and an alias record for the domain. Null: no DNS records (bring your own)."
  type        = string
  default     = null
}

variable "rest_api_id" {
  description = "ID of the REST API the domain maps to."
  type        = string
}

variable "stage_name" {
  description = "Name of the deployed stage the base path maps to (the stage must exist first)."
  type        = string
}

variable "tags" {
  description = "Tags for the certificate and the domain name, on top of the provider's default_tags."
  type        = map(string)
  default     = {}
}
