"""Pydantic contracts of the workflow and activities (no heavy imports: workflow-safe)."""
