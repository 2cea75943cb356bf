variable "rest_api_id" {
  description = "ID of the REST API to deploy."
  type        = string
}

variable "stage_name" {
  description = "Name of the API Gateway stage (the first path segment of the invoke URL)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,128}$", var.stage_name))
    error_message = "The stage_name must be 1 to 128 characters of letters, digits or underscores."
  }
}

variable "description" {
  description = "Description of the stage."
  type        = string
  default     = ""
}

variable "redeployment_fingerprints" {
  description = "Values whose change must create a new deployment, for example modules/integration output fingerprints. Only their hash is kept, so pass stable values: no whole resources."
  type        = map(string)

  validation {
    condition     = length(var.redeployment_fingerprints) > 0
    error_message = "The redeployment_fingerprints map must not be empty; a deployment with nothing to fingerprint would never be redeployed."
  }
}

variable "variables" {
  description = "Stage variables ($stageVariables in mapping templates)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.variables) : can(regex("^[A-Za-z0-9_]{1,64}$", k))])
    error_message = "Each stage variable name must be 1 to 64 letters, digits or underscores."
  }
}

variable "xray_tracing_enabled" {
  description = "Whether the stage sends traces to X-Ray."
  type        = bool
  default     = false
}

variable "throttling_burst_limit" {
  description = "Burst limit of every method of the stage; -1 leaves the account default."
  type        = number
  default     = -1

  validation {
    condition     = var.throttling_burst_limit >= -1 && floor(var.throttling_burst_limit) == var.throttling_burst_limit
    error_message = "The throttling_burst_limit must be -1 (account default) or a whole number of zero or more."
  }
}

variable "throttling_rate_limit" {
  description = "Steady-state requests per second of every method of the stage; -1 leaves the account default."
  type        = number
  default     = -1

  validation {
    condition     = var.throttling_rate_limit >= -1
    error_message = "The throttling_rate_limit must be -1 (account default) or zero or more."
  }
}

variable "logging_level" {
  description = "Execution logging level of every method: OFF, ERROR or INFO. Anything but OFF needs the account-level API Gateway CloudWatch role."
  type        = string
  default     = "OFF"

  validation {
    condition     = contains(["OFF", "ERROR", "INFO"], var.logging_level)
    error_message = "The logging_level must be OFF, ERROR or INFO."
  }
}

variable "metrics_enabled" {
  description = "Whether every method publishes detailed CloudWatch metrics."
  type        = bool
  default     = false
}

variable "data_trace_enabled" {
  description = "Whether execution logs include full requests and responses (never in production)."
  type        = bool
  default     = false
}

variable "enable_access_logs" {
  description = "Whether the stage writes access logs to a log group created here (API-Gateway-Access-Logs_<api-id>/<stage>). Needs the account-level API Gateway CloudWatch role."
  type        = bool
  default     = false
}

variable "access_log_retention_days" {
  description = "Retention in days of the access log group, when enable_access_logs is true."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.access_log_retention_days)
    error_message = "The access_log_retention_days must be one of the values CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "access_log_format" {
  description = "Access log line format; the default is a JSON line with the fields of API Gateway's JSON example."
  type        = string
  default     = "{\"requestId\":\"$context.requestId\",\"ip\":\"$context.identity.sourceIp\",\"caller\":\"$context.identity.caller\",\"user\":\"$context.identity.user\",\"requestTime\":\"$context.requestTime\",\"httpMethod\":\"$context.httpMethod\",\"resourcePath\":\"$context.resourcePath\",\"status\":\"$context.status\",\"protocol\":\"$context.protocol\",\"responseLength\":\"$context.responseLength\"}"
}

variable "tags" {
  description = "Tags for the stage and its access log group, on top of the provider's default_tags."
  type        = map(string)
  default     = {}
}
