"""A customer-records API protected by the policies in policies/ (FastAPI dependencies).

    uvicorn examples.fastapi_app:app --no-proxy-headers   # trusted proxies: see demo_setup.py
    TOKEN=$(python -m examples.demo_setup token --roles agent --amr pwd,mfa)
    curl -H "Authorization: Bearer $TOKEN" localhost:8000/customers/c-1001

Each route declares what it is about with ``zt.requires(...)``: FastAPI's router is the
route table. Agents see card numbers and national ID numbers masked; without MFA they
are asked to step up (401, RFC 9470); another department's customer is a 403
problem+json. A device attestation goes in ``X-Device-Attestation``
(``python -m examples.demo_setup attest --user u-anna``). ``/docs`` shows the bearer
scheme on the protected routes; ``/health`` is not declared, so it is not guarded.
``/customers/{id}/live`` is a WebSocket decided on its handshake.
Configuration and the demo keys (generated on first run, demo only): examples/demo_setup.py.
"""

from typing import Annotated, Any

import attrs
from fastapi import Body, Depends, FastAPI, HTTPException, Response, WebSocket

from examples.demo_setup import CUSTOMERS, build_config, build_pdp
from zerotrust import Decision
from zerotrust.web import apply_obligations
from zerotrust.web.fastapi import ZeroTrust

EDITABLE = frozenset({"name", "email", "phone"})

app = FastAPI(title="Customer records (zerotrust demo)")
# The live feed applies mask and tokenize to what it sends (see live()): a stream is
# not one JSON body zerotrust could rewrite, so the app says it does that itself.
config = attrs.evolve(build_config(), websocket_handled_obligations={"mask", "tokenize"})
zt = ZeroTrust(build_pdp(), config=config)


def attributes(id: str) -> dict[str, Any] | None:
    """What the policies may see of a record; None: unknown, so the policies refuse."""
    record = CUSTOMERS.get(id)
    return record and {"owner_dept": record["owner_dept"], "sensitivity": record["sensitivity"]}


def department(dept: str) -> dict[str, Any]:
    return {"records": sum(1 for c in CUSTOMERS.values() if c["owner_dept"] == dept)}


Read = Annotated[
    Decision,
    Depends(zt.requires("customer_record", "read", resource_id="id", properties=attributes)),
]
Update = Annotated[
    Decision,
    Depends(zt.requires("customer_record", "update", resource_id="id", properties=attributes)),
]
Export = Annotated[
    Decision,
    Depends(
        zt.requires(
            "customer_record",
            "export",
            resource_id="dept",
            properties=lambda dept: {"owner_dept": dept, "sensitivity": 3},
            context=department,
        )
    ),
]


def _found(customer_id: str) -> dict[str, Any]:
    record = CUSTOMERS.get(customer_id)
    if record is None:
        raise HTTPException(404, "no such customer")
    return record


@app.get("/customers/{id}")
def read_customer(id: str, decision: Read, response: Response) -> dict[str, Any]:
    # zerotrust masks fields in this JSON as the decision's obligations say.
    response.headers["x-decision-id"] = decision.decision_id
    return _found(id)


@app.patch("/customers/{id}")
def update_customer(
    id: str, decision: Update, changes: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    record = _found(id)
    record.update({k: v for k, v in changes.items() if k in EDITABLE})
    return record


@app.get("/departments/{dept}/export")
def export_customers(dept: str, decision: Export) -> dict[str, Any]:
    records = [c for c in CUSTOMERS.values() if c["owner_dept"] == dept]
    return {"department": dept, "records": records}


@app.websocket("/customers/{id}/live")
async def live(websocket: WebSocket, id: str, decision: Read) -> None:
    # Decided on the handshake: a refusal never reaches this function.
    await websocket.accept()
    record = CUSTOMERS[id]  # the policies refuse an unknown id before this runs
    await websocket.send_json(apply_obligations(record, decision, tokenizer=config.tokenizer))
    await websocket.close()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


zt.install(app)
