"""Logging shared by the package; the handlers' Powertools Logger formats and ships the records."""

from __future__ import annotations

from aws_lambda_powertools import Logger

# A child logger: it reuses the handler's JSON formatter and Lambda context keys.
logger = Logger(service="capture-bridge", child=True)
