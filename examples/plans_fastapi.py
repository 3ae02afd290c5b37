"""A list endpoint the database filters: FastAPI, SQLAlchemy and a query plan.

    uvicorn examples.plans_fastapi:app
    TOKEN=$(python -m examples.demo_setup token --roles agent --amr pwd)
    curl -H "Authorization: Bearer $TOKEN" 'localhost:8000/customers?limit=2'

``GET /customers`` asks the PDP for a plan ("which customer records may this caller
read?"), runs it as the ``WHERE`` of the page's query, masks each row as the allow rule
that matched it says, and reports the rows read (``record_access``), so reading a list
counts as reading. The PDP verifies the bearer token and the device attestation
(``X-Device-Attestation``, ``python -m examples.demo_setup attest --user u-anna``) itself
(``identity=``). Pages are
keyset-paged by id (``?after=c-1002``); ``step_up`` says what a stronger login would
open. The table lives in SQLite (``CUSTOMERS_DB``, default in memory) and is filled from
the demo's records on start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool

from examples.demo_setup import CUSTOMERS, ROOT, build_config
from zerotrust import IdentityError, PolicyDecisionPoint
from zerotrust.identity import IdentityResolver
from zerotrust.plan import PlanKind
from zerotrust.plan.sqlalchemy import to_filter
from zerotrust.web import apply_obligations


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    email: Mapped[str]
    card_number: Mapped[str]
    ssn: Mapped[str]
    owner_dept: Mapped[str | None]  # NULL: no owning department (the policies refuse it)
    sensitivity: Mapped[int | None]


#: The attributes the policies read, and the columns that hold them.
COLUMNS = {
    "resource.id": Customer.id,
    "resource.properties.owner_dept": Customer.owner_dept,
    "resource.properties.sensitivity": Customer.sensitivity,
}
PUBLIC = ("id", "name", "email", "card_number", "ssn", "owner_dept", "sensitivity")

url = os.environ.get("CUSTOMERS_DB", "sqlite://")
# In memory: one connection shared by the threads FastAPI runs sync dependencies in.
engine = (
    sa.create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    if url == "sqlite://"
    else sa.create_engine(url)
)
Base.metadata.create_all(engine)
with Session(engine) as session, session.begin():
    if session.scalar(sa.select(sa.func.count()).select_from(Customer)) == 0:
        session.add_all(Customer(**{k: c[k] for k in PUBLIC}) for c in CUSTOMERS.values())

config = build_config()
pdp = PolicyDecisionPoint.from_path(
    ROOT / "policies", identity=IdentityResolver(jwt=config.jwt, device=config.device)
)
app = FastAPI(title="Customer records, filtered by policy (zerotrust demo)")


def db() -> Iterator[Session]:
    with Session(engine) as session:
        yield session


@app.exception_handler(IdentityError)
async def unauthenticated(request: Request, exc: IdentityError) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(
        {"error": "invalid_token", "detail": str(exc)},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


@app.get("/customers")
async def list_customers(
    request: Request,
    session: Annotated[Session, Depends(db)],
    authorization: Annotated[str | None, Header()] = None,
    x_device_attestation: Annotated[str | None, Header()] = None,
    after: str = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    plan = await pdp.plan_async(
        {
            "subject": {"token": token},
            "action": {"name": "read"},
            "resource": {"type": "customer_record"},
            "device": {"attestation": x_device_attestation} if x_device_attestation else {},
            "context": {"ip": request.client.host} if request.client else {},
        }
    )
    step_up = plan.step_up.requirements.to_dict() if plan.step_up else None
    if plan.kind is PlanKind.ALWAYS_DENIED:
        return {"customers": [], "next": None, "step_up": step_up}
    query = (
        sa.select(Customer)
        .where(to_filter(plan, COLUMNS), Customer.id > after)
        .order_by(Customer.id)
        .limit(limit + 1)
    )
    rows = list(session.scalars(query))
    page, more = rows[:limit], len(rows) > limit
    shown = []
    for row in page:
        record = {k: getattr(row, k) for k in PUBLIC}
        properties = {"owner_dept": row.owner_dept, "sensitivity": row.sensitivity}
        resource = {
            "id": row.id,
            "properties": {k: v for k, v in properties.items() if v is not None},
        }
        shown.append(apply_obligations(record, plan.obligations_for(resource)))
    pdp.record_access(plan, records=len(page))
    return {"customers": shown, "next": page[-1].id if more else None, "step_up": step_up}
