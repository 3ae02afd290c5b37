#!/usr/bin/env python
"""The customer-records API on Django and DRF, with zerotrust's Django middleware, DRF
permission and filter, and a Channels WebSocket guarded at its handshake.

    python examples/django_app/manage.py migrate          # SQLite, with the demo records
    gunicorn --chdir examples/django_app project.wsgi     # or: manage.py runserver --noreload
    TOKEN=$(python -m examples.demo_setup token --roles agent --amr pwd,mfa)
    curl -H "Authorization: Bearer $TOKEN" localhost:8000/customers/c-1001
    curl -H "Authorization: Bearer $TOKEN" localhost:8000/api/customers/

    uvicorn --app-dir examples/django_app project.asgi:application   # + the WebSocket
    # ws://localhost:8000/ws/customers/c-1001 with the same Authorization header

Agents see card numbers and national ID numbers masked; without MFA a confidential
record asks for a step-up (401, RFC 9470); another department's customer is a 403
problem+json; the API's list holds only the records the caller may read. DJANGO_DEBUG=1:
refusals say why. DJANGO_DB: the SQLite file. Keys: examples/demo_setup.py.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The repository root, for examples.demo_setup (and zerotrust when not installed).
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
