"""The OpenAPI 3.1 document of ``zerotrust serve``: what a client generator or a gateway reads.

Written out rather than derived from code, because the wire format is the AuthZEN 1.0
specification's, and :mod:`zerotrust.server.protocol` checks it by hand (strictly: the
certification scenario wants 400 for every missing or mistyped field). The request and
response schemas refine the spec's own JSON Schemas (Authorization API 1.0, sections 6 to
8; the ``authzen-evaluation-request`` / ``-response`` schemas): without identity
verification every request this document accepts, the spec's schema accepts too, and
every response the server sends validates against the spec's response schema. Unknown
keys are allowed everywhere, as the spec's forward-compatibility rule demands.
"""

from __future__ import annotations

from typing import Any

from zerotrust import __version__

__all__ = ["OPENAPI_PATH", "openapi_document"]

#: Where the server publishes the document (unauthenticated, like the metadata).
OPENAPI_PATH = "/openapi.json"

_SPEC = "https://openid.net/specs/authorization-api-1_0.html"
_NAME = {"type": "string", "minLength": 1}
_OBJECT = {"type": "object"}
#: An optional member sent as JSON ``null`` is read as absent.
_OPTIONAL_OBJECT = {"type": ["object", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or ``null`` standing for the member being absent."""
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _entity(kind: str, *, required: tuple[str, ...], section: str) -> dict[str, Any]:
    ident: dict[str, Any] = {
        **_NAME,
        "description": f"The {kind}'s identifier, scoped to its type.",
    }
    if "id" not in required and "type" in required:  # the entity searched for
        ident = {"description": f"Ignored: the search lists the {kind}s."}
    return {
        "type": "object",
        "description": f"The {kind} ({_SPEC}#name-{section}).",
        "required": list(required),
        "properties": {
            "type": {**_NAME, "description": f"The type of the {kind}."},
            "id": ident,
            "properties": {**_OPTIONAL_OBJECT, "description": f"Attributes of the {kind}."},
        },
    }


def _schemas(verifies_identity: bool) -> dict[str, Any]:
    subject = _entity(
        "subject", required=() if verifies_identity else ("type", "id"), section="subject"
    )
    if verifies_identity:
        for name in ("type", "id"):
            subject["properties"][name] = _nullable(subject["properties"][name])
        subject["properties"]["properties"] = {
            **_OPTIONAL_OBJECT,
            "description": "Attributes of the subject; ``token`` is the user's token.",
            "properties": {"token": _nullable(_NAME)},
        }
        subject["description"] += (
            " Named by the user's token (``properties.token`` or the ``X-Subject-Token``"
            " header); ``type`` and ``id``, when sent, must agree with it."
        )
    context = {
        "type": "object",
        "description": f"Environment of the request ({_SPEC}#name-context); ``device`` carries"
        " the device's posture (and, with identity verification, its ``attestation``).",
        "properties": {"device": _OPTIONAL_OBJECT},
    }
    evaluation_parts = {
        "subject": _nullable(_ref("Subject")) if verifies_identity else _ref("Subject"),
        "resource": _ref("Resource"),
        "action": _ref("Action"),
        "context": _nullable(_ref("Context")),
    }
    defaults = {name: _nullable(schema) for name, schema in evaluation_parts.items()}
    required = ["resource", "action"] if verifies_identity else ["subject", "resource", "action"]
    error = {
        "type": "object",
        "description": "Why the request was not decided: an identity refusal's ``code``, or a"
        " batch item's ``status`` and ``message``.",
        "properties": {
            "code": {"type": "string"},
            "status": {"type": "integer"},
            "message": {"type": "string"},
        },
    }
    decision_context = {
        "type": "object",
        "description": "zerotrust's explanation of the decision. ``effect`` tells a step-up"
        " (``decision`` false) from a deny; a PEP must carry out ``obligations``."
        " ``reasons``, ``risk``, ``errors`` and ``policy_revision`` are left out when the"
        " server is configured with ``include_reasons: false``.",
        "properties": {
            "decision_id": {"type": "string"},
            "effect": {"type": "string", "enum": ["allow", "deny", "step_up"]},
            "acr_values": {"type": "string", "description": "Space-separated (RFC 9470)."},
            "max_age": {"type": "integer", "minimum": 0, "description": "Seconds (RFC 9470)."},
            "amr_values": {"type": "string"},
            "obligations": {"type": "array", "items": _OBJECT},
            "reasons": {"type": "array", "items": _OBJECT},
            "risk": _OBJECT,
            "errors": {"type": "array", "items": _OBJECT},
            "policy_revision": {"type": "string"},
            "error": error,
        },
    }
    search_request: dict[str, Any] = {
        "type": "object",
        "properties": {
            **evaluation_parts,
            "page": {
                "type": ["object", "null"],
                "properties": {
                    "token": {
                        "type": ["string", "null"],
                        "description": "A previous answer's ``page.next_token`` for this"
                        " same query; any other is refused with 400.",
                    },
                    "limit": {"type": ["integer", "null"], "minimum": 0},
                    "properties": _OPTIONAL_OBJECT,
                },
            },
        },
    }
    searched_subject = _entity("subject", required=("type",), section="subject")
    searched_resource = _entity("resource", required=("type",), section="resource")
    return {
        "Subject": subject,
        "Resource": _entity("resource", required=("type", "id"), section="resource"),
        "Action": {
            "type": "object",
            "description": f"The action ({_SPEC}#name-action).",
            "required": ["name"],
            "properties": {"name": _NAME, "properties": _OPTIONAL_OBJECT},
        },
        "Context": context,
        "EvaluationRequest": {
            "type": "object",
            "description": f"Access Evaluation request ({_SPEC}#name-access-evaluation-api).",
            "required": required,
            "properties": evaluation_parts,
        },
        "EvaluationResponse": {
            "type": "object",
            "description": "Only ``allow`` is ``true``.",
            "required": ["decision"],
            "properties": {"decision": {"type": "boolean"}, "context": _ref("DecisionContext")},
        },
        "DecisionContext": decision_context,
        "EvaluationsRequest": {
            "type": "object",
            "description": f"Access Evaluations request ({_SPEC}#name-access-evaluations-api):"
            " top-level entities are defaults an item replaces whole. Without"
            " ``evaluations`` (or with an empty list) it is one evaluation.",
            "properties": {
                **defaults,
                "evaluations": {
                    "type": ["array", "null"],
                    "description": "Each item an object with any of ``subject``, ``resource``,"
                    " ``action`` and ``context``; an item that is not a valid evaluation"
                    " does not fail the batch: its answer is ``false`` with ``context.error``.",
                    "items": {},
                },
                "options": {
                    "type": ["object", "null"],
                    "properties": {
                        "evaluations_semantic": {
                            "type": ["string", "null"],
                            "enum": [
                                "execute_all",
                                "deny_on_first_deny",
                                "permit_on_first_permit",
                                None,
                            ],
                        }
                    },
                },
            },
            "anyOf": [
                {
                    "required": ["evaluations"],
                    "properties": {"evaluations": {"type": "array", "minItems": 1}},
                },
                {
                    "allOf": [_ref("EvaluationRequest")],
                    "properties": {"evaluations": {"type": ["array", "null"], "maxItems": 0}},
                },
            ],
        },
        "EvaluationsResponse": {
            "description": "One response per item, in order; or one evaluation's response.",
            "oneOf": [
                {
                    "type": "object",
                    "required": ["evaluations"],
                    "properties": {
                        "evaluations": {"type": "array", "items": _ref("EvaluationResponse")}
                    },
                },
                _ref("EvaluationResponse"),
            ],
        },
        "SubjectSearchRequest": {
            **search_request,
            "required": ["resource", "action"]
            if verifies_identity
            else ["subject", "resource", "action"],
            "properties": {**search_request["properties"], "subject": searched_subject},
        },
        "ResourceSearchRequest": {
            **search_request,
            "required": required,
            "properties": {**search_request["properties"], "resource": searched_resource},
        },
        "ActionSearchRequest": {
            **search_request,
            "required": ["resource"] if verifies_identity else ["subject", "resource"],
            "properties": {
                **search_request["properties"],
                "action": {"description": "Ignored: the search lists the actions."},
            },
        },
        "SearchResponse": {
            "type": "object",
            "description": f"Search results ({_SPEC}#name-search-apis): the entities for which"
            " an evaluation would allow; ``page.next_token`` fetches the next page.",
            "required": ["results"],
            "properties": {
                "results": {"type": "array", "items": _OBJECT},
                "page": {
                    "type": "object",
                    "properties": {
                        "next_token": {"type": "string"},
                        "count": {"type": "integer", "minimum": 0},
                    },
                },
                "context": _OBJECT,
            },
        },
        "Metadata": {
            "type": "object",
            "description": "PDP metadata (Authorization API 1.0, section 9).",
            "required": ["policy_decision_point"],
            "properties": {
                "policy_decision_point": {"type": "string"},
                **{
                    f"{name}_endpoint": {"type": "string"}
                    for name in (
                        "access_evaluation",
                        "access_evaluations",
                        "search_subject",
                        "search_resource",
                        "search_action",
                    )
                },
            },
        },
    }


_ERROR_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_REFUSALS = {
    "400": "The body is not an AuthZEN request (the message names the field).",
    "401": "The PEP sent no bearer token, or an unknown one.",
    "403": "The server serves loopback callers only (``insecure_local``).",
    "408": "The body did not arrive within the request timeout.",
    "413": "The body is larger than ``max_body_bytes``.",
    "431": "The request line and headers are larger than 16 KiB.",
    "500": "An internal error; it is logged with the request id.",
    "503": "Too many requests in flight, or the decision took longer than the timeout.",
}


def _responses(ok: str, schema: str) -> dict[str, Any]:
    found: dict[str, Any] = {
        "200": {"description": ok, "content": {"application/json": {"schema": _ref(schema)}}}
    }
    found.update(
        {code: {"description": text, "content": _ERROR_TEXT} for code, text in _REFUSALS.items()}
    )
    return found


def _post(summary: str, request: str, response: str, headers: list[Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": headers,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(request)}},
            },
            "responses": _responses("The decision.", response),
        }
    }


def openapi_document(*, authenticated: bool, verifies_identity: bool) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document for a server configured so: a JSON-ready mapping.

    ``authenticated``: PEPs send a bearer secret (every server but an ``insecure_local``
    one); ``verifies_identity``: subjects are named by a user token, so subject search
    is not offered and ``X-Subject-Token`` is read.
    """
    headers: list[Any] = [
        {
            "name": "X-Request-ID",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Echoed, and logged with every decision (a fresh one if absent"
            " or longer than 200 characters).",
        }
    ]
    if verifies_identity:
        headers.append(
            {
                "name": "X-Subject-Token",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "The user's token, when not in ``subject.properties.token``.",
            }
        )
    paths: dict[str, Any] = {
        "/access/v1/evaluation": _post(
            "Access Evaluation", "EvaluationRequest", "EvaluationResponse", headers
        ),
        "/access/v1/evaluations": _post(
            "Access Evaluations (batch)", "EvaluationsRequest", "EvaluationsResponse", headers
        ),
        "/access/v1/search/resource": _post(
            "Resource search", "ResourceSearchRequest", "SearchResponse", headers
        ),
        "/access/v1/search/action": _post(
            "Action search", "ActionSearchRequest", "SearchResponse", headers
        ),
    }
    if not verifies_identity:
        paths["/access/v1/search/subject"] = _post(
            "Subject search", "SubjectSearchRequest", "SearchResponse", headers
        )
    public: dict[str, Any] = {"security": []}
    paths["/.well-known/authzen-configuration"] = {
        "get": {
            **public,
            "summary": "PDP metadata",
            "responses": {
                "200": {
                    "description": "Where each API is.",
                    "content": {"application/json": {"schema": _ref("Metadata")}},
                }
            },
        }
    }
    paths["/healthz"] = {
        "get": {
            **public,
            "summary": "Liveness",
            "responses": {
                "200": {
                    "description": "The process answers.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status"],
                                "properties": {"status": {"const": "ok"}},
                            }
                        }
                    },
                }
            },
        }
    }
    ready = {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"enum": ["ready", "not ready"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
            "revision": {"type": "string"},
        },
    }
    paths["/readyz"] = {
        "get": {
            **public,
            "summary": "Readiness: policies loaded and the behaviour store answering",
            "responses": {
                code: {
                    "description": text,
                    "content": {"application/json": {"schema": ready}},
                }
                for code, text in (("200", "Ready."), ("503", "Not ready: see checks."))
            },
        }
    }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics (text exposition format 0.0.4)",
            "responses": {
                "200": {"description": "The metrics.", "content": _ERROR_TEXT},
                "401": {"description": _REFUSALS["401"], "content": _ERROR_TEXT},
                "403": {"description": _REFUSALS["403"], "content": _ERROR_TEXT},
            },
        }
    }
    paths[OPENAPI_PATH] = {
        "get": {
            **public,
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1.0.",
                    "content": {"application/json": {"schema": _OBJECT}},
                }
            },
        }
    }
    components: dict[str, Any] = {"schemas": _schemas(verifies_identity)}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "zerotrust AuthZEN policy decision point",
            "version": __version__,
            "description": f"OpenID AuthZEN Authorization API 1.0 ({_SPEC}). JSON as I-JSON"
            " (RFC 7493): UTF-8, no duplicate keys; an integer written without fraction or"
            " exponent must fit in 64 bits (a CEL int), or the request is refused with 400.",
        },
        "paths": paths,
        "components": components,
    }
    if authenticated:
        components["securitySchemes"] = {
            "pep": {
                "type": "http",
                "scheme": "bearer",
                "description": "A bearer secret of the server's configuration (RFC 6750).",
            }
        }
        document["security"] = [{"pep": []}]
    return document
