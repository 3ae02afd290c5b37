"""A small Django site for tests/test_web_django.py: views declared for zerotrust."""
