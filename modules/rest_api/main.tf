# A REST API, the resource tree of every route path, and one method per route. It does
# not integrate, deploy or stage anything: modules/integration and modules/stage do.
#
# Terraform cannot make a for_each resource its own parent, so the tree is built level by
# level: level_N holds every distinct path prefix N segments deep and hangs off level_N-1.

locals {
  any_required_parameter = anytrue(flatten([for r in var.routes : values(r.request_parameters)]))

  max_depth = 8

  route_map = { for r in var.routes : "${r.method} ${r.path}" => r }

  # "/users/{id}/orders" -> ["users", "{id}", "orders"]
  segments = { for r in var.routes : r.path => compact(split("/", r.path)) }

  # Every distinct non-root prefix, keyed by its resource path, with its parent's path.
  prefixes = merge([
    for path, segs in local.segments : {
      for i in range(length(segs)) : "/${join("/", slice(segs, 0, i + 1))}" => {
        depth     = i + 1
        path_part = segs[i]
        parent    = i == 0 ? "/" : "/${join("/", slice(segs, 0, i))}"
      }
    }
  ]...)

  levels = [for d in range(1, local.max_depth + 1) : { for p, v in local.prefixes : p => v if v.depth == d }]

  resource_ids = merge(
    { "/" = aws_api_gateway_rest_api.this.root_resource_id },
    { for p, r in aws_api_gateway_resource.level_1 : p => r.id },
    { for p, r in aws_api_gateway_resource.level_2 : p => r.id },
    { for p, r in aws_api_gateway_resource.level_3 : p => r.id },
    { for p, r in aws_api_gateway_resource.level_4 : p => r.id },
    { for p, r in aws_api_gateway_resource.level_5 : p => r.id },
    { for p, r in aws_api_gateway_resource.level_6 : p => r.id },
    { for p, r in aws_api_gateway_resource.level_7 : p => r.id },
    { for p, r in aws_api_gateway_resource.level_8 : p => r.id },
  )
}

resource "aws_api_gateway_rest_api" "this" {
  #checkov:skip=CKV_AWS_237:create_before_destroy would need a second API of the same name; the API is long-lived and only its deployments rotate.
  name        = var.name
  description = var.description

  endpoint_configuration {
    types = [var.endpoint_type]
  }

  tags = var.tags
}

resource "aws_api_gateway_resource" "level_1" {
  for_each    = local.levels[0]
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = each.value.path_part
}

resource "aws_api_gateway_resource" "level_2" {
  for_each    = local.levels[1]
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level_1[each.value.parent].id
  path_part   = each.value.path_part
}

resource "aws_api_gateway_resource" "level_3" {
  for_each    = local.levels[2]
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level_2[each.value.parent].id
  path_part   = each.value.path_part
}

resource "aws_api_gateway_resource" "level_4" {
  for_each    = local.levels[3]
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level_3[each.value.parent].id
  path_part   = each.value.path_part
}

resource "aws_api_gateway_resource" "level_5" {
  for_each    = local.levels[4]
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level_4[each.value.parent].id
  path_part   = each.value.path_part
}

resource "aws_api_gateway_resource" "level_6" {
  for_each    = local.levels[5]
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level_5[each.value.parent].id
  path_part   = each.value.path_part
}

resource "aws_api_gateway_resource" "level_7" {
  for_each    = local.levels[6]
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level_6[each.value.parent].id
  path_part   = each.value.path_part
}

resource "aws_api_gateway_resource" "level_8" {
  for_each    = local.levels[7]
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level_7[each.value.parent].id
  path_part   = each.value.path_part
}

# Methods, like integrations and responses, are updated in place, never replaced: the
# deployment in modules/stage is create_before_destroy, Terraform forces that onto
# everything it depends on, and creating a method before deleting the old one with the
# same identity (API, resource, HTTP method) would delete the new one.
# API Gateway enforces `required = true` method-request parameters only through a request
# validator; without one the flag is documentation. One validator serves every route that
# marks a parameter as required.
resource "aws_api_gateway_request_validator" "parameters" {
  count = local.any_required_parameter ? 1 : 0

  rest_api_id                 = aws_api_gateway_rest_api.this.id
  name                        = "required-parameters"
  validate_request_parameters = true
  validate_request_body       = false
}

resource "aws_api_gateway_method" "this" {
  #checkov:skip=CKV_AWS_59:The API is public by design; callers are authenticated by the function, not by API Gateway.
  for_each = local.route_map

  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = local.resource_ids[each.value.path]
  http_method          = each.value.method
  authorization        = "NONE"
  request_parameters   = length(each.value.request_parameters) > 0 ? each.value.request_parameters : null
  request_validator_id = anytrue(values(each.value.request_parameters)) ? aws_api_gateway_request_validator.parameters[0].id : null
}
