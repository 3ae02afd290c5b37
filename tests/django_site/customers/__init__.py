"""The test site's app: a real model the DRF and backend tests load from SQLite."""
