"""Prefect flows and their deployments (``prefect.yaml``)."""
