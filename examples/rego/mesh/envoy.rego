# The mesh adapter: ztmesh hands CUSTOM providers the opa-envoy-plugin input (plus the
# verified JWT under input.attributes.auth). This module builds the RBAC+ABAC policy's
# input from it and asks that policy (../policy/policy.rego) unchanged.
#   subject  ← the verified end-user token: sub, roles, clearance claims
#   resource ← the order named in the path, looked up in data.ecommerce.orders
package envoy.authz

import rego.v1

default allow := false

claims := input.attributes.auth.claims

order_id := input.parsed_path[3] if {
	input.parsed_path[0] == "api"
	input.parsed_path[2] == "orders"
}

abac_input := {
	"attributes": input.attributes,
	"subject": {"id": claims.sub, "roles": claims.roles, "clearance": claims.clearance},
	"resource": object.union({"type": "order", "id": order_id}, data.ecommerce.orders[order_id]),
}

allow if {
	data.ecommerce.authz.allow with input as abac_input
}
