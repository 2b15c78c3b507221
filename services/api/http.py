"""``/client/api``: parameters in, CloudStack envelopes out; ``/console`` static files.

Order of checks, as CloudStack's servlet: response format, command known, credentials (401),
role may call it (401), rate limit (429), characters and parameters (431/430), then the handler.
Nothing reaches the bus before every check has passed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from prometheus_client import Counter, Histogram

from contracts.errors import ErrorCode
from services.api import auth
from services.api.context import ApiContext
from services.api.errors import ApiError, error_body, unauthorized
from services.api.params import check_characters, parse
from services.api.table import Api, Call

log = structlog.get_logger("api")
CONTENT_TYPE = "application/json; charset=UTF-8"
CONSOLE = Path(__file__).with_name("console")
MAX_BODY = 1024 * 1024
# The longest request line (and header line) read; past it the answer is CloudStack's 431. Wider
# than aiohttp's 8190 bytes, for GET requests with long values (userdata); POST for more.
MAX_REQUEST_LINE = 32 * 1024


def reply(key: str, body: dict[str, Any], status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        body=json.dumps({key: body}, separators=(",", ":")).encode(),
        status=status,
        headers={"Content-Type": CONTENT_TYPE, **(headers or {})},
    )


def error_reply(command: str | None, api: Api | None, error: ApiError) -> web.Response:
    key = "errorresponse" if api is None or error.code == 432 else f"{command.lower()}response"
    # X-Description is a header: one line, Latin-1.
    header = error.text.replace("\r", " ").replace("\n", " ").encode("latin-1", "replace").decode("latin-1")
    return reply(key, error_body(error.code, error.text), error.code, {"X-Description": header[:1000]})


class CloudStackProtocol(RequestHandler):
    """aiohttp's connection handler with CloudStack's error answers for requests that never reach
    a handler (a request line or header past the limits, malformed HTTP): CloudStack's JSON
    envelope, so that every client reads the error as it reads any other."""

    def __init__(self, manager, **kwargs):
        kwargs.setdefault("max_line_size", MAX_REQUEST_LINE)
        super().__init__(manager, **kwargs)

    def handle_error(self, request, status: int = 500, exc=None, message=None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs it; refuses once a reply has begun
        if status >= 500:
            error = ApiError(ErrorCode.INTERNAL_ERROR, "internal error; the request was not done")
        elif isinstance(exc, LineTooLong):
            error = ApiError(
                ErrorCode.PARAM_ERROR,
                f"the request is too long ({exc.message.strip()}); at most {MAX_REQUEST_LINE} bytes "
                "are read per line: send long parameters in a POST body",
            )
        else:
            text = getattr(exc, "message", None) or message or "malformed request"
            error = ApiError(ErrorCode.PARAM_ERROR, f"malformed HTTP request: {text}")
        response = error_reply(None, None, error)
        response.force_close()
        return response


class ClientApi:
    def __init__(
        self,
        ctx: ApiContext,
        table: dict[str, Api],
        *,
        session_timeout: float,
        limiter: auth.RateLimiter,
        registry,
        secure_cookies: bool = False,
    ):
        self.secure_cookies = secure_cookies
        self.ctx = ctx
        self.table = table
        self.session_timeout = session_timeout
        self.limiter = limiter
        self.requests = Counter(
            "snapdeploy_api_requests_total",
            "API requests by command and CloudStack code (0: success).",
            ["command", "code"],
            registry=registry,
        )
        self.seconds = Histogram(
            "snapdeploy_api_request_seconds", "API request duration.", ["command"], registry=registry
        )

    async def params(self, request: web.Request) -> dict[str, str]:
        params: dict[str, str] = {}
        for key, value in request.query.items():
            params.setdefault(key, value)
        if request.method == "POST" and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            for key, value in (await request.post()).items():
                if isinstance(value, str):
                    params.setdefault(key, value)
        return params

    async def __call__(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        command: str | None = None
        api: Api | None = None
        who = None
        try:
            if request.method not in ("GET", "POST"):
                raise ApiError(405, f"{request.method} is not served: use GET or POST")
            params = await self.params(request)
            lowered = {k.lower(): v for k, v in params.items()}
            command = lowered.get("command")
            api = self.table.get(command or "")
            if lowered.get("response", "json").lower() != "json":
                api = None
                raise ApiError(ErrorCode.UNSUPPORTED, "only response=json is served; XML is not supported")
            if api is None:
                raise unauthorized()
            call = await self.authorised(request, api, params, lowered)
            who = call.caller.username if call.caller else None
            body = await api.handler(call)
            response = reply(f"{api.name.lower()}response", body)
            for name, value in call.cookies.items():
                if value is None:
                    response.del_cookie(name, path="/")
                else:
                    response.set_cookie(
                        name, value, httponly=True, samesite="Strict", path="/", secure=self.secure_cookies
                    )
            code = 0
        except ApiError as error:
            response, code = error_reply(command, api, error), error.code
        except Exception as error:  # a bug or an outage: CloudStack's 530, the details in the log only
            log.error("request failed", command=command, error=repr(error), exc_info=error)
            response = error_reply(command, api, ApiError(530, "internal error; see the api's log"))
            code = 530
        label = api.name if api else "unknown"
        took = time.perf_counter() - started
        self.requests.labels(label, str(code)).inc()
        self.seconds.labels(label).observe(took)
        log.info("request", command=label, code=code, user=who, duration_ms=round(took * 1000, 1))
        return response

    async def authorised(
        self, request: web.Request, api: Api, params: dict[str, str], lowered: dict[str, str]
    ) -> Call:
        if api.public:
            caller = None
        else:
            async with self.ctx.pool.acquire() as conn:
                if "apikey" in lowered:
                    caller = await auth.by_signature(conn, self.ctx.keyring, params)
                else:
                    caller = await auth.by_session(
                        conn,
                        request.cookies.get(auth.SESSION_COOKIE),
                        lowered.get("sessionkey"),
                        timeout=self.session_timeout,
                    )
                if not await self.limiter.allow(conn, caller.api_key or str(caller.user_id)):
                    raise auth.too_many()
            if api.admin and not caller.is_admin:
                raise unauthorized(
                    f"The given command {api.name} does not exist or it is not available for user"
                )
        check_characters(params)
        args = parse(api.name, api.all_params, lowered)
        return Call(api, caller, args, self.ctx, request=request)


def api_app(client: ClientApi) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("*", "/client/api", client)
    app.router.add_route("*", "/client/api/", client)

    async def console_index(_: web.Request) -> web.StreamResponse:
        index = CONSOLE / "index.html"
        if not index.is_file():
            raise web.HTTPNotFound(text="the console is not installed")
        return web.FileResponse(index)

    async def console_slash(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/")  # relative links of the page resolve under /console/

    app.router.add_get("/console", console_slash)
    app.router.add_get("/console/", console_index)
    if CONSOLE.is_dir():
        app.router.add_static("/console/", CONSOLE, follow_symlinks=False)
    return app
