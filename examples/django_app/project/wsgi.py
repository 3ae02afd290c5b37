"""WSGI entry point: ``gunicorn --chdir examples/django_app project.wsgi``."""

import os
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[3]))  # examples.demo_setup, zerotrust
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
