"""ASGI entry point (HTTP and the Channels WebSocket): ``uvicorn --app-dir
examples/django_app project.asgi:application``."""

import os
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[3]))  # examples.demo_setup, zerotrust
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.asgi import get_asgi_application

http = get_asgi_application()  # sets Django up before the consumers import models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from customers.consumers import LiveCustomer, attributes  # noqa: E402
from django.urls import path  # noqa: E402

from zerotrust.web.channels import ZeroTrustMiddleware, requires  # noqa: E402

live = requires("customer_record", "read", resource_id="customer_id", properties=attributes)

application = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": ZeroTrustMiddleware(
            URLRouter([live(path("ws/customers/<str:customer_id>", LiveCustomer.as_asgi()))])
        ),
    }
)
