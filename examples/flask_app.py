"""The customer-records API of fastapi_app.py on Flask, with the zerotrust Flask extension.

    flask --app examples.flask_app run              # add --debug: refusals say why
    gunicorn 'examples.flask_app:create_app()'      # a production WSGI server
    TOKEN=$(python -m examples.demo_setup token --roles agent --amr pwd,mfa)
    curl -H "Authorization: Bearer $TOKEN" localhost:5000/customers/c-1001

Each view declares what it is about where Flask routes it (``@zt.requires`` under the
route); Flask's view arguments give the resource id. Agents see card numbers and
national ID numbers masked; without MFA a confidential record asks for a step-up (401,
RFC 9470); another department's customer is a 403 problem+json. An app factory with a
blueprint: ``flask`` finds ``create_app``. Configuration and the demo keys (generated on
first run, demo only): examples/demo_setup.py.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, g, request

from examples.demo_setup import CUSTOMERS, build_config, build_pdp
from zerotrust.web.flask import ZeroTrust

EDITABLE = frozenset({"name", "email", "phone"})

zt = ZeroTrust()  # configured per app by create_app
customers = Blueprint("customers", __name__)


def attributes(customer_id: str) -> dict[str, Any] | None:
    """What the policies may know of a record; None: unknown (the policies refuse)."""
    record = CUSTOMERS.get(customer_id)
    if record is None:
        return None
    return {"owner_dept": record["owner_dept"], "sensitivity": record["sensitivity"]}


def _found(customer_id: str) -> dict[str, Any]:
    record = CUSTOMERS.get(customer_id)
    if record is None:
        abort(404)
    return record


@customers.get("/customers/<customer_id>")
@zt.requires("customer_record", "read", resource_id="customer_id", properties=attributes)
def read_customer(customer_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    # The extension masks fields in this JSON as the decision's obligations say.
    return _found(customer_id), {"x-decision-id": g.zerotrust_decision.decision_id}


@customers.patch("/customers/<customer_id>")
@zt.requires("customer_record", "update", resource_id="customer_id", properties=attributes)
def update_customer(customer_id: str) -> dict[str, Any]:
    record = _found(customer_id)
    changes = request.get_json(force=True)
    record.update({k: v for k, v in changes.items() if k in EDITABLE})
    return record


@customers.get("/departments/<dept>/export")
@zt.requires(
    "customer_record",
    "export",
    resource_id="dept",
    properties=lambda dept: {"owner_dept": dept, "sensitivity": 3},
    context=lambda dept: {"records": sum(1 for c in CUSTOMERS.values() if c["owner_dept"] == dept)},
)
def export_customers(dept: str) -> dict[str, Any]:
    records = [c for c in CUSTOMERS.values() if c["owner_dept"] == dept]
    return {"department": dept, "records": records}


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["ZEROTRUST_PDP"] = build_pdp()
    app.config["ZEROTRUST_CONFIG"] = build_config()
    zt.init_app(app)
    app.register_blueprint(customers)

    @app.get("/health")  # not declared: zerotrust leaves it alone
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
