"""Fixtures for the accuracy tests: those of the monitoring suite (a control plane app over
SQLite, a demo deployment, a control plane process)."""

from tests.monitoring.conftest import ADMIN_TOKEN, api, control_plane, deployment, rabbitmq, settings  # noqa: F401
