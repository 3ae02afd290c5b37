"""The customer-records API of fastapi_app.py on Flask (WSGI), same policies and routes.

flask --app examples.flask_app run
TOKEN=$(python -m examples.demo_setup token --roles agent --amr pwd,mfa)
curl -H "Authorization: Bearer $TOKEN" localhost:5000/customers/c-1001
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request

from examples.demo_setup import CUSTOMERS, build_config, build_pdp, resolve
from zerotrust.web.wsgi import ZeroTrustMiddleware, decision_of

EDITABLE = frozenset({"name", "email", "phone"})

app = Flask(__name__)
app.wsgi_app = ZeroTrustMiddleware(  # type: ignore[method-assign]
    app.wsgi_app, build_pdp(), resolve=resolve, config=build_config()
)


def _found(customer_id: str) -> dict[str, Any]:
    record = CUSTOMERS.get(customer_id)
    if record is None:
        abort(404)
    return record


@app.get("/customers/<customer_id>")
def read_customer(customer_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    return _found(customer_id), {"x-decision-id": decision_of(request).decision_id}


@app.patch("/customers/<customer_id>")
def update_customer(customer_id: str) -> dict[str, Any]:
    record = _found(customer_id)
    changes = request.get_json(force=True)
    record.update({k: v for k, v in changes.items() if k in EDITABLE})
    return record


@app.get("/departments/<dept>/export")
def export_customers(dept: str) -> dict[str, Any]:
    records = [c for c in CUSTOMERS.values() if c["owner_dept"] == dept]
    return {"department": dept, "records": records}
