"""Fixtures for the package tests (the demo package is tests/conftest.py's `demo_package`)."""
