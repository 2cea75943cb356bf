variable "region" {
  description = "AWS region of the stage; must equal the region of the root's aws provider."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "The region must be an AWS region name such as ap-northeast-2."
  }
}

variable "stage_name" {
  description = "Stage name: the function alias and the API Gateway stage are named after it."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,128}$", var.stage_name))
    error_message = "The stage_name must be 1 to 128 characters of letters, digits or underscores."
  }
}

variable "tags" {
  description = "Tags of every resource of the stage. The rendered root also sets them as the provider's default_tags."
  type        = map(string)
  default     = {}
}

variable "function" {
  description = "The Lambda function, as in the tfvars contract (docs/design.md); see modules/lambda for each attribute's rules."
  type = object({
    name                 = string
    handler              = string
    runtime              = optional(string, "python3.12")
    description          = optional(string, "")
    memory_size          = optional(number, 128)
    timeout              = optional(number, 10)
    environment          = optional(map(string), {})
    log_retention_days   = optional(number, 14)
    reserved_concurrency = optional(number, -1)
    tracing_mode         = optional(string, "PassThrough")
    alias_version        = optional(string)
    package = object({
      filename         = optional(string)
      s3_bucket        = optional(string)
      s3_key           = optional(string)
      source_code_hash = string
    })
  })
}

variable "secret_environment" {
  description = "Environment variables of the function whose values are secret (orch passes them as TF_VAR_secret_environment, never in a file); see modules/lambda."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "api" {
  description = "The REST API and its routes, as in the tfvars contract (docs/design.md); see modules/rest_api and modules/integration for each attribute's rules. A null request_templates means the Method Request passthrough template. CORS: routes[].cors (headers on the real methods' responses), preflights and error_cors (see modules/cors)."
  type = object({
    name          = string
    description   = optional(string, "")
    endpoint_type = optional(string, "REGIONAL")
    routes = list(object({
      method               = string
      path                 = string
      request_parameters   = optional(map(bool), {})
      integration_type     = optional(string, "AWS")
      request_templates    = optional(map(string))
      passthrough_behavior = optional(string, "WHEN_NO_TEMPLATES")
      timeout_milliseconds = optional(number, 29000)
      responses = optional(list(object({
        status_code        = string
        selection_pattern  = optional(string, "")
        response_templates = optional(map(string), {})
      })), [{ status_code = "200", selection_pattern = "", response_templates = {} }])
      cors = optional(object({
        allow_origin      = string
        expose_headers    = optional(list(string), [])
        allow_credentials = optional(bool, false)
      }))
    }))
    preflights = optional(list(object({
      path              = string
      allow_origin      = string
      allow_methods     = list(string)
      allow_headers     = list(string)
      expose_headers    = optional(list(string), [])
      max_age           = optional(number)
      allow_credentials = optional(bool, false)
    })), [])
    error_cors = optional(object({
      allow_origin      = string
      allow_headers     = optional(list(string), [])
      expose_headers    = optional(list(string), [])
      allow_credentials = optional(bool, false)
    }))
  })
}

variable "stage" {
  description = "The API Gateway stage settings, as in the tfvars contract (docs/design.md); see modules/stage for each attribute's rules."
  type = object({
    description               = optional(string, "")
    variables                 = optional(map(string), {})
    throttling_burst_limit    = optional(number, -1)
    throttling_rate_limit     = optional(number, -1)
    logging_level             = optional(string, "OFF")
    metrics_enabled           = optional(bool, false)
    data_trace_enabled        = optional(bool, false)
    xray_tracing_enabled      = optional(bool, false)
    enable_access_logs        = optional(bool, false)
    access_log_retention_days = optional(number, 14)
  })
  default = {}
}

variable "domain" {
  description = "The stage's custom domain (see modules/domain for each attribute's rules), or null for none."
  type = object({
    name               = string
    base_path          = optional(string, "")
    endpoint_type      = optional(string, "REGIONAL")
    security_policy    = optional(string, "TLS_1_2")
    certificate_arn    = optional(string)
    create_certificate = optional(bool, false)
    hosted_zone        = optional(string)
  })
  default = null
}
