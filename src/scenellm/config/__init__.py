"""Typed configuration: schema and loading."""
