"""Pydantic models of the HTTP API: camelCase on the wire, snake_case in Python."""
