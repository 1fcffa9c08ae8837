"""Helpers the tests and bench/ import: plain functions and classes, no fixtures.

Fixtures live in the conftest.py files; what a test module or a benchmark imports by name
lives here, one module per role.
"""
