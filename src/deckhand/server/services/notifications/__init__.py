"""Notifications (docs/notifications.md): channels to send to, policies that decide when,
an evaluator over the per-minute aggregates, and a dispatcher that delivers with retries."""
