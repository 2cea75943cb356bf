variable "name" {
  description = "Name of the REST API."
  type        = string

  validation {
    condition     = length(trimspace(var.name)) > 0 && length(var.name) <= 1024
    error_message = "The name must be a non-empty string of at most 1024 characters."
  }
}

variable "description" {
  description = "Description of the REST API."
  type        = string
  default     = ""
}

variable "endpoint_type" {
  description = "Endpoint type of the REST API: REGIONAL, EDGE or PRIVATE."
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "EDGE", "PRIVATE"], var.endpoint_type)
    error_message = "The endpoint_type must be REGIONAL, EDGE or PRIVATE."
  }
}

variable "routes" {
  description = <<-EOT
    Routes of the API. `path` is a resource path such as "/", "/users/{id}/orders" or
    "/{proxy+}" (at most 8 segments deep); `method` is an HTTP method or ANY;
    `request_parameters` maps "method.request.{header|querystring|path}.<name>" to
    whether it is required. The resources of every path prefix are created once.
  EOT
  type = list(object({
    method             = string
    path               = string
    request_parameters = optional(map(bool), {})
  }))

  validation {
    condition     = length(var.routes) > 0
    error_message = "The routes list must contain at least one route."
  }

  validation {
    condition = alltrue([
      for r in var.routes : contains(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"], r.method)
    ])
    error_message = "Each route method must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY, in upper case."
  }

  validation {
    condition = alltrue([
      for r in var.routes : can(regex("^/$|^(/([A-Za-z0-9._~:@!$&'()*+,;=-]+|\\{[A-Za-z0-9._-]+\\+?\\}))+$", r.path))
    ])
    error_message = "Each route path must be \"/\" or start with \"/\" and consist of non-empty segments (literal text, {param} or a final {proxy+}), with no trailing slash."
  }

  validation {
    condition     = alltrue([for r in var.routes : length(compact(split("/", r.path))) <= 8])
    error_message = "Each route path may be at most 8 segments deep, the depth this module supports."
  }

  validation {
    condition     = alltrue([for r in var.routes : !can(regex("\\+\\}.", r.path))])
    error_message = "A greedy path parameter such as {proxy+} may only be the last segment of a route path."
  }

  validation {
    condition     = length(distinct([for r in var.routes : "${r.method} ${r.path}"])) == length(var.routes)
    error_message = "Each combination of route method and path must appear only once."
  }

  validation {
    condition = alltrue(flatten([
      for r in var.routes : [
        for k in keys(r.request_parameters) : can(regex("^method\\.request\\.(header|querystring|path)\\.[^.\\s]+", k))
      ]
    ]))
    error_message = "Each request_parameters key must look like method.request.header.<name>, method.request.querystring.<name> or method.request.path.<name>."
  }
}

variable "tags" {
  description = "Tags for the REST API, on top of the provider's default_tags."
  type        = map(string)
  default     = {}
}
