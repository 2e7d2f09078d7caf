"""Integrations that turn each incoming request into a trace, one module per framework."""
