variable "rest_api_id" {
  description = "ID of the REST API (modules/rest_api output rest_api_id)."
  type        = string
}

variable "resource_ids" {
  description = "Map of resource path to API Gateway resource ID (modules/rest_api output resource_ids); every preflight path must be in it."
  type        = map(string)
}

variable "preflights" {
  description = <<-EOT
    One entry per resource path whose routes have CORS on: the OPTIONS method there answers
    the preflight with these Access-Control-* values. allow_origin is "*" or one origin;
    max_age null leaves Access-Control-Max-Age out.
  EOT
  type = list(object({
    path              = string
    allow_origin      = string
    allow_methods     = list(string)
    allow_headers     = list(string)
    expose_headers    = optional(list(string), [])
    max_age           = optional(number)
    allow_credentials = optional(bool, false)
  }))
  default = []

  validation {
    condition     = length(distinct([for p in var.preflights : p.path])) == length(var.preflights)
    error_message = "Each path may have only one preflight."
  }

  validation {
    condition     = alltrue([for p in var.preflights : p.allow_origin == "*" || can(regex("^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$", p.allow_origin))])
    error_message = "Each allow_origin must be \"*\" or one origin such as https://app.example.com (no path, no trailing slash)."
  }

  validation {
    condition     = alltrue([for p in var.preflights : !(p.allow_credentials && p.allow_origin == "*")])
    error_message = "A preflight with allow_credentials needs a named allow_origin: browsers refuse credentials with \"*\"."
  }

  validation {
    condition     = alltrue([for p in var.preflights : p.max_age == null ? true : p.max_age >= 0 && p.max_age <= 86400])
    error_message = "Each max_age must be between 0 and 86400 seconds."
  }

  validation {
    condition     = alltrue([for p in var.preflights : length(p.allow_methods) > 0])
    error_message = "Each preflight must allow at least one method."
  }
}

variable "error_cors" {
  description = "Access-Control headers on the API's DEFAULT_4XX and DEFAULT_5XX gateway responses (API Gateway's own errors); null leaves the gateway responses alone."
  type = object({
    allow_origin      = string
    allow_headers     = optional(list(string), [])
    expose_headers    = optional(list(string), [])
    allow_credentials = optional(bool, false)
  })
  default = null

  validation {
    condition     = var.error_cors == null ? true : var.error_cors.allow_origin == "*" || can(regex("^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$", var.error_cors.allow_origin))
    error_message = "The error_cors allow_origin must be \"*\" or one origin such as https://app.example.com."
  }
}
