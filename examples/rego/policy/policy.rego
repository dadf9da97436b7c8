# RBAC + ABAC authorization for the e-commerce services (opa-envoy-plugin input shape).
#
# A request is allowed when all of these hold:
#   1. RBAC: the caller has the role "admin" or "user";
#   2. ownership: the caller owns the resource;
#   3. business hours: the request hour (in the configured zone) is in [start, end);
#   4. ABAC: the resource's sensitivity level is at most the caller's clearance.
# `deny_reasons` explains a denial; `decision` is what a gateway logs.
package ecommerce.authz

import rego.v1

default allow := false

allow if {
	role_allowed
	owner_is_caller
	within_business_hours
	clearance_sufficient
}

allowed_roles := {"admin", "user"}

# The caller's identity, set by the gateway after authentication.
subject := input.subject

caller := subject.id

role_allowed if {
	some role in subject.roles
	role in allowed_roles
}

owner_is_caller if {
	input.resource.owner == caller
}

# Deployment settings from data.ecommerce.config (see data.json), over these defaults.
default configured := {}

configured := data.ecommerce.config

config := object.union({"timezone": "UTC", "business_hours": {"start": 9, "end": 17}}, configured)

# Request time: the gateway's timestamp when present, otherwise the evaluation clock.
request_ns := input.attributes.request.time_ns if {
	is_number(input.attributes.request.time_ns)
} else := time.now_ns()

request_hour := time.clock([request_ns, config.timezone])[0]

within_business_hours if {
	request_hour >= config.business_hours.start
	request_hour < config.business_hours.end
}

clearance_sufficient if {
	input.resource.sensitivity <= subject.clearance
}

deny_reasons contains "role not allowed" if not role_allowed

deny_reasons contains "caller does not own the resource" if not owner_is_caller

deny_reasons contains sprintf("outside business hours (%d:00)", [request_hour]) if not within_business_hours

deny_reasons contains "insufficient clearance" if not clearance_sufficient

decision := {
	"allow": allow,
	"reasons": deny_reasons,
	"method": input.attributes.request.http.method,
	"path": input.attributes.request.http.path,
}
