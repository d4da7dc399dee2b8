"""Local runner for the SAM application: HTTP API, schedules and DynamoDB without Docker."""
