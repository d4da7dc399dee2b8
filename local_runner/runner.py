"""The local runner: the template's functions behind a local HTTP API, schedules, DynamoDB and
SQS (queues and the event source mappings that poll them).

All the functions run in this one process. That is what makes the runner fast and debuggable,
and it has one consequence worth knowing: the environment is shared, so every function sees the
union of the template's environment variables (a conflict is reported at start).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from local_runner.apigw import ApiGateway, ApiGatewayServer
from local_runner.dynamodb import (
    ENDPOINT_VARIABLE,
    EmbeddedDynamoDB,
    aws_defaults,
    dynamodb_client,
    ensure_table,
)
from local_runner.sqs import ENDPOINT_VARIABLE as SQS_ENDPOINT_VARIABLE
from local_runner.sqs import MappingStats, SqsPoller, ensure_queues, sqs_client
from local_runner.template import (
    LOCAL_ACCOUNT_ID,
    LOCAL_REGION,
    FunctionDef,
    SamTemplate,
    ScheduleDef,
    load_template,
)

logger = logging.getLogger(__name__)

#: The repository's template, used when no other is given.
DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"

Handler = Callable[[Any, Any], Any]


@dataclass
class LambdaContext:
    """The parts of the Lambda context object that handler code and Powertools use."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    timeout_seconds: float
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @classmethod
    def for_function(cls, function: FunctionDef) -> LambdaContext:
        """A fresh context for one invocation of ``function``."""
        name = function.logical_id  # like sam local: the logical id stands for the name
        today = datetime.now(UTC).strftime("%Y/%m/%d")
        return cls(
            function_name=name,
            function_version="$LATEST",
            invoked_function_arn=(
                f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{name}"
            ),
            memory_limit_in_mb=function.memory_size,
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{name}",
            log_stream_name=f"{today}/[$LATEST]{secrets.token_hex(16)}",
            timeout_seconds=function.timeout,
        )

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's Timeout (never negative)."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


#: The sessions API's OpenAPI document (YAML), served as JSON at ``OPENAPI_PATH``.
OPENAPI_DOCUMENT = Path("openapi") / "sessions.yaml"
OPENAPI_PATH = "/openapi.json"


def openapi_documents(root: Path) -> dict[str, bytes]:
    """``{"/openapi.json": <JSON>}`` when the project has the document, else nothing."""
    source = root / OPENAPI_DOCUMENT
    if not source.is_file():
        return {}
    return {OPENAPI_PATH: json.dumps(yaml.safe_load(source.read_text(encoding="utf-8"))).encode()}


def load_env_file(path: str | Path) -> dict[str, str]:
    """Read ``KEY=VALUE`` lines; blank lines and ``#`` comments are skipped.

    An ``export`` prefix and quotes around the value are accepted, so a file that also works
    with ``source .env`` works here.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        text = text.removeprefix("export ").strip()
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            logger.warning("%s:%d: not KEY=VALUE, ignored", path, number)
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def schedule_event(function: FunctionDef, schedule: ScheduleDef) -> Any:
    """The event a schedule delivers: its Input if set, else what AWS sends by default."""
    if schedule.input is not None:
        try:
            return json.loads(schedule.input)
        except ValueError:
            return schedule.input
    if schedule.event_type == "ScheduleV2":
        return {}  # EventBridge Scheduler sends an empty object when the target has no Input
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rule = f"{function.logical_id}{schedule.event_name}"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID,
        "time": now,
        "region": LOCAL_REGION,
        "resources": [f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:rule/{rule}"],
        "detail": {},
    }


def _marshal(value: Any, what: str) -> Any:
    """Pass ``value`` through JSON as Lambda does, so unserialisable results fail here too."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise TypeError(f"Unable to marshal {what}: {error}") from error


class _EnvPatch:
    """Changes ``os.environ`` and remembers how to undo it."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, key: str, value: str) -> None:
        if key not in self._saved:
            self._saved[key] = os.environ.get(key)
        os.environ[key] = value

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()


class LocalRunner:
    """Runs a SAM template's functions locally; usable from the CLI, tests and the demo.

    Only one runner should be started at a time in a process, because the handlers read their
    settings from the shared ``os.environ``; ``stop()`` restores it.
    """

    def __init__(
        self,
        template_path: str | Path = DEFAULT_TEMPLATE,
        *,
        port: int = 0,
        schedule_interval: float | None = None,
        env: Mapping[str, str] | None = None,
        env_file: str | Path | None = None,
        start_schedules: bool = True,
        embedded_dynamodb: bool | None = None,
        start_queues: bool | None = None,
        queue_concurrency: int | None = None,
        queue_attributes: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Load the template; nothing starts before :meth:`start`.

        ``env`` wins over everything, then the process environment, then ``env_file``, then
        the template. ``embedded_dynamodb``: None starts moto unless
        ``AWS_ENDPOINT_URL_DYNAMODB`` is set, True always starts it, False never does. The
        template's queues live on that embedded moto server too (else on
        ``AWS_ENDPOINT_URL_SQS``, else on a moto server of their own). ``start_queues`` runs the
        functions' SQS event source mappings; by default they run when the schedules do (a test
        that drives time by hand delivers with :meth:`poll`, as it runs schedules with
        :meth:`tick`). ``queue_concurrency`` caps every mapping's MaximumConcurrency: one
        process on a few cores cannot run as many invocations at once as Lambda, and the local
        DynamoDB takes one call at a time, so under a large backlog the handlers' short
        timeouts (2 s) would expire while they wait their turn. ``queue_attributes`` change
        queues' attributes from the template's, by logical id (e.g. a shorter
        VisibilityTimeout, so that a test's stranded message comes back within the test).
        """
        self.template: SamTemplate = load_template(template_path)
        self._port = port
        self._schedule_interval = schedule_interval
        self._explicit_env = dict(env or {})
        self._env_file = Path(env_file) if env_file else None
        self._start_schedules = start_schedules
        self._embedded_dynamodb = embedded_dynamodb
        self._start_queues = start_schedules if start_queues is None else start_queues
        self._queue_concurrency = queue_concurrency
        self._queue_attributes = {
            key: dict(value) for key, value in (queue_attributes or {}).items()
        }

        self.environment: dict[str, str] = {}
        self.table_names: dict[str, list[str]] = {}
        #: Each queue's local URL, by logical id (once started).
        self.queue_urls: dict[str, str] = {}
        #: Each SQS event source mapping, as ``Function.Event`` (once started).
        self.pollers: dict[str, SqsPoller] = {}
        self._env = _EnvPatch()
        self._dynamodb: EmbeddedDynamoDB | None = None
        self._sqs_server: EmbeddedDynamoDB | None = None
        self._server: ApiGatewayServer | None = None
        self._handlers: dict[str, Handler] = {}
        self._added_paths: list[str] = []
        self._loaded_modules: set[str] = set()
        self._locks = {name: threading.Lock() for name in self.template.functions}
        self._stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> LocalRunner:
        """Set the environment, start DynamoDB, import the handlers, then serve and schedule."""
        if self._started:
            return self
        self._started = True
        try:
            self._apply_environment()
            self._start_dynamodb()
            self._start_sqs()
            self._import_handlers()
            gateway = ApiGateway(
                self.template.routes,
                self._invoke_for_gateway,
                openapi_documents(self.template.root),
            )
            self._server = ApiGatewayServer(gateway, port=self._port).start()
            if self._start_schedules:
                self._start_scheduler()
            self._start_pollers()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything started and undo the changes to the environment and ``sys.path``."""
        self._stop_event.set()
        # The pollers first, while what their batches call (DynamoDB, SQS) still runs.
        for poller in self.pollers.values():
            poller.stop()
        self.pollers.clear()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self._server is not None:
            self._server.stop()
            self._server = None
        for server in (self._sqs_server, self._dynamodb):
            if server is not None:
                server.stop()
        self._sqs_server = self._dynamodb = None
        self.queue_urls.clear()
        # Forget the handler modules (and what they imported from the code and layer dirs) so
        # that the next runner imports them afresh with its own environment.
        for name in self._loaded_modules:
            sys.modules.pop(name, None)
        self._loaded_modules.clear()
        for path in self._added_paths:
            if path in sys.path:
                sys.path.remove(path)
        self._added_paths.clear()
        self._handlers.clear()
        self._env.restore()
        self._started = False
        self._stop_event = threading.Event()

    def __enter__(self) -> LocalRunner:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the local HTTP API, ``http://127.0.0.1:<port>``."""
        if self._server is None:
            raise RuntimeError("the runner is not started")
        return self._server.url

    @property
    def sqs_endpoint(self) -> str | None:
        """The SQS endpoint the handlers and the pollers use (once started, with queues)."""
        return os.environ.get(SQS_ENDPOINT_VARIABLE) if self._started else None

    def mapping_stats(self, function_logical_id: str) -> MappingStats:
        """What the function's SQS event source mappings did, added up."""
        total = MappingStats()
        for key, poller in self.pollers.items():
            if key.split(".", 1)[0] == function_logical_id:
                for name, value in vars(poller.stats).items():
                    setattr(total, name, getattr(total, name) + value)
        return total

    @property
    def dynamodb_endpoint(self) -> str | None:
        """The DynamoDB endpoint the handlers use (the embedded one, or the configured one)."""
        return os.environ.get(ENDPOINT_VARIABLE) if self._started else None

    # --- invoking -------------------------------------------------------------------------

    def invoke(self, function_logical_id: str, event: Any) -> Any:
        """Invoke a function directly, as ``aws lambda invoke`` would; exceptions propagate."""
        function = self._function(function_logical_id)
        handler = self._handlers.get(function_logical_id)
        if handler is None:
            raise RuntimeError("the runner is not started")
        result = handler(_marshal(event, "event"), LambdaContext.for_function(function))
        return _marshal(result, f"{function_logical_id} response")

    def tick(self, function_logical_id: str, schedule_name: str | None = None) -> Any:
        """Run one scheduled invocation now; waits while another one of the function runs."""
        function = self._function(function_logical_id)
        schedules = [s for s in function.schedules if schedule_name in (None, s.event_name)]
        if not schedules:
            raise KeyError(f"{function_logical_id} has no schedule {schedule_name or ''}".strip())
        schedule = schedules[0]
        # One invocation at a time per function: the schedule must not pile up slow ticks.
        with self._locks[function_logical_id]:
            started = time.monotonic()
            try:
                result = self.invoke(function_logical_id, schedule_event(function, schedule))
            except Exception:
                logger.info(
                    "tick %s -> error (%.0f ms)",
                    function_logical_id,
                    (time.monotonic() - started) * 1000,
                )
                raise
            logger.info(
                "tick %s -> ok (%.0f ms)", function_logical_id, (time.monotonic() - started) * 1000
            )
            return result

    def poll(self, function_logical_id: str) -> int:
        """Deliver one batch of each of the function's SQS mappings now, as its event source
        mapping would (for tests that drive time by hand); returns the records delivered."""
        self._function(function_logical_id)
        mappings = [
            poller
            for key, poller in self.pollers.items()
            if key.split(".", 1)[0] == function_logical_id
        ]
        if not mappings:
            raise KeyError(f"{function_logical_id} has no SQS event")
        return sum(poller.run_once() for poller in mappings)

    def _function(self, logical_id: str) -> FunctionDef:
        try:
            return self.template.functions[logical_id]
        except KeyError:
            known = ", ".join(sorted(self.template.functions))
            raise KeyError(f"no function {logical_id!r} in the template ({known})") from None

    def _invoke_for_gateway(self, function: FunctionDef, event: dict[str, Any]) -> Any:
        return self.invoke(function.logical_id, event)

    # --- start-up steps -------------------------------------------------------------------

    def _apply_environment(self) -> None:
        """Template values < env file < process environment < ``env`` given to the runner."""
        template_env: dict[str, str] = {}
        for function in self.template.functions.values():
            for key, value in function.environment.items():
                if key in template_env and template_env[key] != value:
                    logger.warning(
                        "%s differs between functions; all run in one process and share %r",
                        key,
                        template_env[key],
                    )
                    continue
                template_env[key] = value
        file_env = load_env_file(self._env_file) if self._env_file else {}
        effective = {**template_env, **file_env}
        effective.update({key: os.environ[key] for key in effective if key in os.environ})
        effective.update(self._explicit_env)
        for key, value in effective.items():
            if os.environ.get(key) != value:
                self._env.set(key, value)
        for key, value in aws_defaults(os.environ).items():
            self._env.set(key, value)
        if "AWS_SAM_LOCAL" not in os.environ:
            # What `sam local` sets; Powertools and friends use it to know they run locally.
            self._env.set("AWS_SAM_LOCAL", "true")
        self.environment = {key: os.environ[key] for key in effective}

    def _start_dynamodb(self) -> None:
        """Use the configured DynamoDB endpoint or start an embedded one; create the tables."""
        if not self.template.tables:
            return
        wanted = self._embedded_dynamodb
        if wanted or (wanted is None and not os.environ.get(ENDPOINT_VARIABLE)):
            self._dynamodb = EmbeddedDynamoDB()
            self._env.set(ENDPOINT_VARIABLE, self._dynamodb.start())
        client = dynamodb_client()
        for table in self.template.tables.values():
            # The handlers use whatever name their variable holds, which may be overridden.
            names = {table.name}
            for function in self.template.functions.values():
                for variable, table_id in function.table_env_vars.items():
                    if table_id == table.logical_id and os.environ.get(variable):
                        names.add(os.environ[variable])
            for name in sorted(names):
                ensure_table(client, table, name)
            self.table_names[table.logical_id] = sorted(names)

    def _start_sqs(self) -> None:
        """Create the template's queues; give the handlers their local URLs.

        They live on the embedded moto server when there is one (its SQS shares the endpoint),
        else on ``AWS_ENDPOINT_URL_SQS``, else on a moto server started for them.
        """
        if not self.template.queues:
            return
        if self._dynamodb is not None and (
            self._embedded_dynamodb or not os.environ.get(SQS_ENDPOINT_VARIABLE)
        ):
            self._env.set(SQS_ENDPOINT_VARIABLE, self._dynamodb.endpoint_url or "")
        elif not os.environ.get(SQS_ENDPOINT_VARIABLE):
            self._sqs_server = EmbeddedDynamoDB()
            self._env.set(SQS_ENDPOINT_VARIABLE, self._sqs_server.start())
        queues = {
            queue_id: replace(queue, attributes={**queue.attributes, **changed})
            if (changed := self._queue_attributes.get(queue_id))
            else queue
            for queue_id, queue in self.template.queues.items()
        }
        # An embedded server starts empty, though moto keeps queues per process.
        embedded = self._sqs_server is not None or self._dynamodb is not None
        self.queue_urls = ensure_queues(sqs_client(), queues, purge=embedded)
        for function in self.template.functions.values():
            for variable, queue_id in function.queue_env_vars.items():
                # Only the template's own value: a URL set in the environment is kept.
                if os.environ.get(variable) == self.template.queues[queue_id].aws_url:
                    self._env.set(variable, self.queue_urls[queue_id])
                    self.environment[variable] = self.queue_urls[queue_id]

    def _start_pollers(self) -> None:
        """One poller per enabled SQS event, as Lambda's event source mappings (its thread
        started with ``start_queues``)."""
        client = sqs_client()
        for function in self.template.functions.values():
            for event in function.queue_events:
                if not event.enabled:
                    continue
                queue = self.template.queues[event.queue]
                name = f"{function.logical_id}.{event.event_name}"
                if self._queue_concurrency is not None:
                    event = replace(
                        event, max_concurrency=min(event.max_concurrency, self._queue_concurrency)
                    )
                self.pollers[name] = SqsPoller(
                    name,
                    event,
                    self.queue_urls[event.queue],
                    queue.arn,
                    self._invoker(function.logical_id),
                    client,
                )
                if not self._start_queues:
                    continue
                self.pollers[name].start()
                logger.info(
                    "queue %s -> %s (batches of %d, %d at once)",
                    queue.name,
                    function.logical_id,
                    event.batch_size,
                    event.max_concurrency,
                )

    def _invoker(self, function_logical_id: str) -> Callable[[dict[str, Any]], Any]:
        return lambda event: self.invoke(function_logical_id, event)

    def _import_handlers(self) -> None:
        """Put code and layer dirs on ``sys.path`` (function code first, as in Lambda), import."""
        code_dirs = [str(fn.code_uri) for fn in self.template.functions.values()]
        layer_dirs = [str(path) for path in self.template.layer_dirs]
        for path in reversed(list(dict.fromkeys(code_dirs + layer_dirs))):
            if path not in sys.path:
                sys.path.insert(0, path)
                self._added_paths.append(path)
        before = set(sys.modules)
        try:
            for function in self.template.functions.values():
                module = importlib.import_module(function.module_name)
                handler = getattr(module, function.handler_name, None)
                if not callable(handler):
                    raise AttributeError(
                        f"{function.logical_id}: {function.module_name} has no callable "
                        f"{function.handler_name}"
                    )
                self._handlers[function.logical_id] = handler
        finally:
            self._loaded_modules = set(sys.modules) - before

    def _start_scheduler(self) -> None:
        """One daemon thread per enabled schedule, each firing every interval."""
        for function in self.template.functions.values():
            for schedule in function.schedules:
                interval = self._schedule_interval or schedule.rate_seconds
                if not schedule.enabled:
                    continue
                if interval is None:
                    logger.warning(
                        "%s: %s runs only with --schedule-interval",
                        function.logical_id,
                        schedule.expression,
                    )
                    continue
                thread = threading.Thread(
                    target=self._schedule_loop,
                    args=(function.logical_id, schedule.event_name, interval, self._stop_event),
                    name=f"schedule-{function.logical_id}-{schedule.event_name}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
                logger.info(
                    "schedule %s every %gs (%s)",
                    function.logical_id,
                    interval,
                    schedule.expression,
                )

    def _schedule_loop(
        self, logical_id: str, event_name: str, interval: float, stop: threading.Event
    ) -> None:
        # Like a rate() schedule, the first invocation comes one interval after start.
        while not stop.wait(interval):
            try:
                self.tick(logical_id, event_name)
            except Exception:
                # A failed tick is logged and the schedule goes on, as the next one would in AWS.
                logger.exception("scheduled invocation of %s failed", logical_id)
