"""A live view of one record over a WebSocket (Django Channels), decided at the handshake."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.forms.models import model_to_dict

from customers.models import Customer
from examples.demo_setup import build_config
from zerotrust.web import apply_obligations


def attributes(customer_id: str) -> dict[str, object] | None:
    """What the policies may know of a record (runs in a worker thread: the ORM is sync)."""
    found = Customer.objects.filter(pk=customer_id).first()
    if found is None:
        return None
    return {"owner_dept": found.owner_dept, "sensitivity": found.sensitivity}


class LiveCustomer(AsyncJsonWebsocketConsumer):
    """Sends the record once accepted; nothing rewrites messages on a stream, so the
    consumer applies the decision's obligations to each one itself."""

    async def connect(self) -> None:
        await self.accept()
        decision = self.scope["zerotrust_decision"]
        customer_id = self.scope["url_route"]["kwargs"]["customer_id"]
        record = await database_sync_to_async(Customer.objects.get)(pk=customer_id)
        tokenizer = build_config().tokenizer
        await self.send_json(
            apply_obligations(model_to_dict(record), decision, tokenizer=tokenizer)
        )
