"""`capture-bridge`: start, follow, list and cancel captures through the sessions API.

Runs on an operator's or a script's machine, never in Lambda: it talks to the API over HTTP
(the local runner, or a deployed stack found by its CloudFormation outputs).
"""
