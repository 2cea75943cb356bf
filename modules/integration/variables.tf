variable "rest_api_id" {
  description = "ID of the REST API whose methods are integrated (modules/rest_api output rest_api_id)."
  type        = string
}

variable "execution_arn" {
  description = "Execution ARN of the REST API, used to scope the Lambda permissions (modules/rest_api output execution_arn)."
  type        = string
}

variable "methods" {
  description = "Map of route key (\"POST /\") to its method, as output by modules/rest_api (output routes)."
  type = map(object({
    resource_id        = string
    http_method        = string
    resource_path      = string
    method_id          = string
    request_parameters = optional(map(bool), {})
  }))
}

variable "function_name" {
  description = "Name of the Lambda function the API invokes."
  type        = string
}

variable "alias_name" {
  description = "Name of the function alias the API invokes; the Lambda permissions are granted on it."
  type        = string
}

variable "alias_invoke_arn" {
  description = "Invoke ARN of the function alias (arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<alias-arn>/invocations), the integration URI."
  type        = string

  validation {
    condition     = can(regex("^arn:[^:]+:apigateway:[^:]+:lambda:path/2015-03-31/functions/.+/invocations$", var.alias_invoke_arn))
    error_message = "The alias_invoke_arn must be an API Gateway Lambda invoke ARN ending in /invocations, such as modules/lambda output alias_invoke_arn."
  }
}

variable "routes" {
  description = <<-EOT
    Routes to integrate, one integration each, keyed "<method> <path>" like modules/rest_api.
    integration_type AWS is the non-proxy Lambda integration: request_templates (null means
    default_request_templates, {} means none), passthrough_behavior, and responses, each a
    method response plus an integration response chosen by selection_pattern ("" = default).
    AWS_PROXY hands the raw request to the function and ignores templates and responses.
    cors (null: off) adds Access-Control-Allow-Origin (and Expose-Headers, Allow-Credentials
    when set) to every response of an AWS route; an AWS_PROXY function sets its own.
  EOT
  type = list(object({
    method               = string
    path                 = string
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

  validation {
    condition     = alltrue([for r in var.routes : contains(["AWS", "AWS_PROXY"], r.integration_type)])
    error_message = "Each route integration_type must be AWS (non-proxy, with mapping templates) or AWS_PROXY."
  }

  validation {
    condition     = alltrue([for r in var.routes : contains(["WHEN_NO_MATCH", "WHEN_NO_TEMPLATES", "NEVER"], r.passthrough_behavior)])
    error_message = "Each route passthrough_behavior must be WHEN_NO_MATCH, WHEN_NO_TEMPLATES or NEVER."
  }

  validation {
    condition     = alltrue([for r in var.routes : r.timeout_milliseconds >= 50 && r.timeout_milliseconds <= 29000])
    error_message = "Each route timeout_milliseconds must be between 50 and 29000."
  }

  validation {
    condition     = alltrue(flatten([for r in var.routes : [for resp in r.responses : can(regex("^[1-5][0-9][0-9]$", resp.status_code))]]))
    error_message = "Each response status_code must be a three-digit HTTP status code such as \"200\"."
  }

  validation {
    condition     = alltrue([for r in var.routes : r.integration_type != "AWS" || length([for resp in r.responses : resp if resp.selection_pattern == ""]) == 1])
    error_message = "Each AWS route needs exactly one response with an empty selection_pattern, the default response."
  }

  validation {
    condition     = alltrue([for r in var.routes : r.cors == null ? true : r.cors.allow_origin == "*" || can(regex("^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$", r.cors.allow_origin))])
    error_message = "Each route cors allow_origin must be \"*\" or one origin such as https://app.example.com (no path, no trailing slash)."
  }

  validation {
    condition     = alltrue([for r in var.routes : length(distinct([for resp in r.responses : resp.status_code])) == length(r.responses)])
    error_message = "Each status_code may appear only once in a route's responses."
  }
}

variable "default_request_templates" {
  description = "Request templates of AWS routes whose request_templates is null. Null (the default) means the API Gateway console's \"Method Request passthrough\" template (templates/passthrough.vtl) for application/json."
  type        = map(string)
  default     = null
}
