"""DynamoDB for local runs: an embedded moto server and tables created from the template."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import MutableMapping
from typing import Any

import boto3
from botocore.exceptions import ClientError

from local_runner.template import TableDef

logger = logging.getLogger(__name__)

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_DYNAMODB"
#: Set only when absent, so that boto3 never reaches for real credentials or a real region.
AWS_DEFAULTS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_ACTIVE_WAIT_SECONDS = 10.0


def aws_defaults(environ: MutableMapping[str, str]) -> dict[str, str]:
    """The dummy credentials and region that ``environ`` lacks (nothing is changed)."""
    missing = {key: value for key, value in AWS_DEFAULTS.items() if not environ.get(key)}
    # Lambda sets AWS_REGION; code that reads it directly should see the same region.
    if not environ.get("AWS_REGION"):
        missing["AWS_REGION"] = (
            environ.get("AWS_DEFAULT_REGION") or AWS_DEFAULTS["AWS_DEFAULT_REGION"]
        )
    return missing


class _OneDynamoDBCallAtATime:
    """WSGI middleware: DynamoDB calls to moto take turns; others (SQS) do not wait for them.

    DynamoDB is safe for concurrent callers, moto's backend is not (a query iterating a table
    while another thread writes to it fails). SQS's long polls must not hold DynamoDB up, so
    only DynamoDB's calls (``X-Amz-Target: DynamoDB_…``) share the lock.
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()
        #: Seconds DynamoDB calls have held the lock: how busy the one-at-a-time server was.
        self.busy_seconds = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB"):
            return self._app(environ, start_response)
        with self._lock:
            started = time.perf_counter()
            try:
                # The whole answer is made under the lock: moto builds it while reading the table.
                return list(self._app(environ, start_response))
            finally:
                self.busy_seconds += time.perf_counter() - started


def _transactions_copy_what_they_touch() -> None:
    """Make moto's TransactWriteItems back up only the items it touches (once per process).

    Moto backs up each table a transaction names by deep-copying the whole table, so a write
    costs time in proportion to the table: thousands of sessions make every capture slow. The
    items a transaction touches are all it can change, so backing those up and putting them back
    on failure rolls back the same. (Local runs only: the embedded server is moto in-process.)
    """
    import copy
    import types

    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "_local_runner", False):
        return
    original = backend.transact_write_items

    def deepcopy(value: Any, memo: Any = None) -> Any:
        # The whole-table backup of the original becomes the table itself (restored below).
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy)  # type: ignore[attr-defined,assignment]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for entry in transact_items:
            try:
                op = next(iter(entry.values()))
                table = self.get_table(op["TableName"])
                keys = op["Key"] if "Key" in op else op["Item"]
                hash_key, range_key = self.get_keys_value(table, keys)
            except Exception:  # noqa: S112 - the original refuses it, having written nothing
                continue
            saved.append(
                (table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key)))
            )
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                table.delete_item(hash_key, range_key)
                if item is not None:
                    if range_key is None:
                        table.items[hash_key] = item
                    else:
                        table.items[hash_key][range_key] = item
            raise

    transact_write_items._local_runner = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class EmbeddedDynamoDB:
    """A moto server (DynamoDB, and SQS on the same endpoint) on 127.0.0.1 and a free port,
    running in a daemon thread."""

    def __init__(self) -> None:
        self._server: Any = None
        self._calls: _OneDynamoDBCallAtATime | None = None
        self.endpoint_url: str | None = None

    @property
    def busy_seconds(self) -> float:
        """Seconds the server has spent on DynamoDB calls, which it answers one at a time."""
        return self._calls.busy_seconds if self._calls is not None else 0.0

    def start(self) -> str:
        """Start the server and return its endpoint URL."""
        # Imported here: moto's server pulls in Flask and werkzeug, needed only when embedding.
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from moto.server import ThreadedMotoServer
        from werkzeug.serving import make_server

        embedded = self

        class Server(ThreadedMotoServer):
            def _server_entry(self) -> None:
                app = _OneDynamoDBCallAtATime(DomainDispatcherApplication(create_backend_app))
                embedded._calls = app
                self._server = make_server(
                    self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
                )
                self._server_ready_event.set()
                self._server.serve_forever()

        # werkzeug logs every request at INFO; the runner already logs what matters.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        _transactions_copy_what_they_touch()
        server = Server(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self.endpoint_url = f"http://{host}:{port}"
        logger.debug("embedded DynamoDB at %s", self.endpoint_url)
        return self.endpoint_url

    def stop(self) -> None:
        """Stop the server (its data is gone with it)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> EmbeddedDynamoDB:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def dynamodb_client(endpoint_url: str | None = None) -> Any:
    """A DynamoDB client for the local endpoint (from the environment when not given)."""
    endpoint = endpoint_url or os.environ.get(ENDPOINT_VARIABLE)
    return boto3.client("dynamodb", endpoint_url=endpoint)


def ensure_table(client: Any, table: TableDef, name: str | None = None) -> bool:
    """Create ``table`` unless it exists, wait until it is active, then enable TTL.

    Returns True when the table was created, False when it was already there.
    """
    table_name = name or table.name
    created = False
    try:
        client.describe_table(TableName=table_name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        try:
            client.create_table(TableName=table_name, **table.create_kwargs)
            created = True
        except ClientError as create_error:
            # Another runner on the same endpoint may have created it in between.
            if create_error.response["Error"]["Code"] != "ResourceInUseException":
                raise
    _wait_active(client, table_name)
    if table.ttl_attribute:
        current = client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"AttributeName": table.ttl_attribute, "Enabled": True},
            )
    logger.debug("table %s %s", table_name, "created" if created else "already exists")
    return created


def _wait_active(client: Any, table_name: str) -> None:
    """Wait until the table is ACTIVE (moto is immediate; DynamoDB Local may not be)."""
    deadline = time.monotonic() + _ACTIVE_WAIT_SECONDS
    while True:
        status = client.describe_table(TableName=table_name)["Table"]["TableStatus"]
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {table_name} is still {status}")
        time.sleep(0.1)
