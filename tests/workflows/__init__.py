"""Workflow logic on stub activities (fast layer): see conftest.py."""
