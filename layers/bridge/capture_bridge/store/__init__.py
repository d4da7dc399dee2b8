"""The session store's parts; `capture_bridge.session_store` puts them together.

- `codec`: sessions, delivery pointers and cursors to and from items, pure (no DynamoDB);
- `dynamodb`: the table, its client and the one conversion of DynamoDB's errors;
- `deliveries`: creating a session once per delivery, Idempotency-Key and open capture;
- `claims`: claims and the writes made under them (saves, faults), cancels and link refreshes;
- `reads`: reading a session, the due sessions and pages of listings;
- `pace`: each helpdesk's note bucket, taken from and tightened with conditional writes.

Nothing is imported here, so that a module of the package loads only what it uses.
"""
