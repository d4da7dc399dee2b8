"""Helpdesk capture bridge: helpdesk webhooks in, Bugpilot captures, internal notes back."""
