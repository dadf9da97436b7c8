package ecommerce.authz_test

import rego.v1

import data.ecommerce.authz

# 2026-03-02T10:30:00Z (a Monday), in nanoseconds
morning := 1772447400000000000

# 2026-03-02T20:00:00Z
evening := 1772481600000000000

base_input := {
	"attributes": {
		"source": {"principal": "spiffe://cluster.local/ns/production/sa/frontend"},
		"request": {
			"time_ns": morning,
			"http": {"method": "GET", "path": "/api/v1/orders/o-1001", "headers": {"x-user-id": "alice"}},
		},
	},
	"subject": {"id": "alice", "roles": ["user"], "clearance": 2},
	"resource": {"type": "order", "id": "o-1001", "owner": "alice", "sensitivity": 1},
}

with_subject(s) := object.union(base_input, {"subject": s})

with_resource(r) := object.union(base_input, {"resource": r})

at(ns) := object.union(base_input, {"attributes": {"request": {"time_ns": ns}}})

test_owner_with_user_role_in_hours_allowed if {
	authz.allow with input as base_input
}

test_admin_role_allowed if {
	authz.allow with input as with_subject({"id": "alice", "roles": ["admin"], "clearance": 2})
}

test_unknown_role_denied if {
	not authz.allow with input as with_subject({"id": "alice", "roles": ["guest"], "clearance": 2})
	"role not allowed" in authz.deny_reasons with input as with_subject({"id": "alice", "roles": ["guest"], "clearance": 2})
}

test_no_roles_denied if {
	not authz.allow with input as with_subject({"id": "alice", "roles": [], "clearance": 2})
}

test_not_owner_denied if {
	not authz.allow with input as with_resource({"type": "order", "id": "o-1002", "owner": "bob", "sensitivity": 1})
}

test_outside_business_hours_denied if {
	not authz.allow with input as at(evening)
	authz.deny_reasons == {"outside business hours (20:00)"} with input as at(evening)
}

test_hour_boundaries if {
	# 09:00 is inside, 17:00 is outside
	authz.allow with input as at(1772442000000000000)
	not authz.allow with input as at(1772470800000000000)
}

test_business_hours_follow_configured_zone if {
	# 10:30 UTC is 05:30 in New York
	not authz.allow with input as base_input with data.ecommerce.config.timezone as "America/New_York"
}

test_sensitivity_equal_to_clearance_allowed if {
	authz.allow with input as with_resource({"type": "order", "id": "o-1001", "owner": "alice", "sensitivity": 2})
}

test_sensitivity_above_clearance_denied if {
	r := {"type": "order", "id": "o-1001", "owner": "alice", "sensitivity": 3}
	not authz.allow with input as with_resource(r)
	authz.deny_reasons == {"insufficient clearance"} with input as with_resource(r)
}

test_missing_subject_denied if {
	not authz.allow with input as object.remove(base_input, {"subject"})
}

test_decision_document if {
	d := authz.decision with input as base_input
	d.allow
	d.reasons == set()
	d.method == "GET"
}
