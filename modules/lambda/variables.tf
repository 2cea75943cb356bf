variable "function_name" {
  description = "Name of the Lambda function; also names its execution role and its log group /aws/lambda/<name>."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.function_name))
    error_message = "The function_name must be 1 to 64 characters of letters, digits, hyphens or underscores."
  }
}

variable "stage_name" {
  description = "Stage this function serves; the published version is exposed through an alias of this name."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,128}$", var.stage_name))
    error_message = "The stage_name must be 1 to 128 letters, digits or underscores, because it is used as the alias name and the API Gateway stage name."
  }
}

variable "description" {
  description = "Description of the Lambda function."
  type        = string
  default     = ""
}

variable "handler" {
  description = "Function entry point, for example handler.handler."
  type        = string

  validation {
    condition     = length(trimspace(var.handler)) > 0 && length(var.handler) <= 128
    error_message = "The handler must be a non-empty string of at most 128 characters, for example handler.handler."
  }
}

variable "runtime" {
  description = "Lambda runtime identifier."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.11", "python3.12", "python3.13", "nodejs20.x", "nodejs22.x"], var.runtime)
    error_message = "The runtime must be one of python3.11, python3.12, python3.13, nodejs20.x or nodejs22.x."
  }
}

variable "memory_size" {
  description = "Memory in MB available to the function (128-10240)."
  type        = number
  default     = 128

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240 && floor(var.memory_size) == var.memory_size
    error_message = "The memory_size must be a whole number of megabytes between 128 and 10240."
  }
}

variable "timeout" {
  description = "Function timeout in seconds (1-900)."
  type        = number
  default     = 10

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900 && floor(var.timeout) == var.timeout
    error_message = "The timeout must be a whole number of seconds between 1 and 900."
  }
}

variable "environment" {
  description = "Environment variables of the function. An empty map omits the environment block."
  type        = map(string)
  default     = {}
}

variable "secret_environment" {
  description = "Environment variables of the function whose values are secret: merged into environment, shown as (sensitive value) in plans. Terraform still stores them in its state."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions; -1 means unreserved, 0 disables the function."
  type        = number
  default     = -1

  validation {
    condition     = var.reserved_concurrency >= -1 && floor(var.reserved_concurrency) == var.reserved_concurrency
    error_message = "The reserved_concurrency must be -1 (unreserved) or a whole number of zero or more."
  }
}

variable "log_retention_days" {
  description = "Retention in days of the function's CloudWatch log group."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log_retention_days must be one of the values CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "package" {
  description = "Deployment package: either a local zip `filename` or `s3_bucket` plus `s3_key`, and `source_code_hash` (base64 of the zip's SHA-256)."
  type = object({
    filename         = optional(string)
    s3_bucket        = optional(string)
    s3_key           = optional(string)
    source_code_hash = string
  })

  validation {
    condition = (
      (var.package.filename != null) != (var.package.s3_bucket != null && var.package.s3_key != null)
      && (var.package.s3_bucket == null) == (var.package.s3_key == null)
    )
    error_message = "The package must set exactly one form: either filename, or both s3_bucket and s3_key."
  }

  validation {
    condition     = can(regex("^[A-Za-z0-9+/]{43}=$", var.package.source_code_hash))
    error_message = "The package.source_code_hash must be the base64 encoding of the zip's SHA-256 digest (44 characters ending in =)."
  }
}

variable "alias_version" {
  description = "Function version the stage's alias points at; null means the version this apply published. orch sets it only to roll a stage back to an earlier version."
  type        = string
  default     = null

  validation {
    condition     = var.alias_version == null || can(regex("^[0-9]+$", var.alias_version))
    error_message = "The alias_version must be null or a published version number such as 3 ($LATEST cannot serve a stage)."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing mode of the function: PassThrough or Active."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "The tracing_mode must be PassThrough or Active."
  }
}

variable "tags" {
  description = "Tags for the resources of this module, on top of the provider's default_tags."
  type        = map(string)
  default     = {}
}
