#!/usr/bin/env python
"""The customer-records API on Django, with zerotrust's Django middleware.

    python examples/django_app/manage.py runserver --noreload
    TOKEN=$(python -m examples.demo_setup token --roles agent --amr pwd,mfa)
    curl -H "Authorization: Bearer $TOKEN" localhost:8000/customers/c-1001

Agents see card numbers and national ID numbers masked; without MFA a confidential
record asks for a step-up (401, RFC 9470); another department's customer is a 403
problem+json. DJANGO_DEBUG=1: refusals say why. Keys: examples/demo_setup.py.
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
