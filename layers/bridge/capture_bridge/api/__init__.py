"""The HTTP side of the bridge: one edge (`edge`) under the webhook and the sessions API.

`edge` reads API Gateway's HTTP API events, maps the bridge's errors to answers and re-reads the
settings after a refusal; the sessions API's routes (`sessions`) and the checks of what callers
send (`sessions_input`) sit on it, as does the webhook (`capture_bridge.webhook`).
"""
