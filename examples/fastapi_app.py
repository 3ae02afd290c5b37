"""A customer-records API protected by the policies in policies/ (FastAPI, ASGI).

    uvicorn examples.fastapi_app:app --no-proxy-headers   # trusted proxies: see demo_setup.py
    TOKEN=$(python -m examples.demo_setup token --roles agent --amr pwd,mfa)
    curl -H "Authorization: Bearer $TOKEN" localhost:8000/customers/c-1001

Agents see card numbers and national ID numbers masked; without MFA they are asked to
step up (401, RFC 9470); another department's customer is a 403 problem+json.
Configuration and the demo keys (generated on first run, demo only): examples/demo_setup.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Request, Response

from examples.demo_setup import CUSTOMERS, build_config, build_pdp, resolve
from zerotrust.web.asgi import ZeroTrustMiddleware, decision_of

EDITABLE = frozenset({"name", "email", "phone"})

app = FastAPI(title="Customer records (zerotrust demo)")
app.add_middleware(ZeroTrustMiddleware, pdp=build_pdp(), resolve=resolve, config=build_config())


def _found(customer_id: str) -> dict[str, Any]:
    record = CUSTOMERS.get(customer_id)
    if record is None:
        raise HTTPException(404, "no such customer")
    return record


@app.get("/customers/{customer_id}")
def read_customer(customer_id: str, request: Request, response: Response) -> dict[str, Any]:
    # The middleware masks fields in this JSON as the decision's obligations say.
    response.headers["x-decision-id"] = decision_of(request).decision_id
    return _found(customer_id)


@app.patch("/customers/{customer_id}")
def update_customer(customer_id: str, changes: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    record = _found(customer_id)
    record.update({k: v for k, v in changes.items() if k in EDITABLE})
    return record


@app.get("/departments/{dept}/export")
def export_customers(dept: str) -> dict[str, Any]:
    records = [c for c in CUSTOMERS.values() if c["owner_dept"] == dept]
    return {"department": dept, "records": records}
