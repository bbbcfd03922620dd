"""HTTP plumbing for the sandbox: the parsed request, the response, routing, and amoCRM's answer shapes."""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

HAL_JSON = "application/hal+json"
PROBLEM_JSON = "application/problem+json"
PLAIN_JSON = "application/json"
HTML = "text/html; charset=UTF-8"


class BadBody(Exception):
    """The request body is not the JSON (or form) the endpoint needs."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args_starting_with(self, prefix: str) -> dict[str, str]:
        return {key: values[-1] for key, values in self.query.items() if key.startswith(prefix)}

    def json(self) -> Any:
        if not self.body.strip():
            raise BadBody("The request body is empty")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise BadBody("The request body is not valid JSON") from exc

    def json_object(self, *, optional: bool = False) -> dict:
        if optional and not self.body.strip():
            return {}
        payload = self.json()
        if not isinstance(payload, dict):
            raise BadBody("The request body must be a JSON object")
        return payload

    def form_or_json(self) -> dict:
        """The OAuth endpoint takes either encoding, like amoCRM's."""
        content_type = (self.headers.get("Content-Type") or "").lower()
        if "application/x-www-form-urlencoded" in content_type:
            return {key: values[-1] for key, values in parse_qs(self.body.decode("utf-8", "replace")).items()}
        return self.json_object()

    @property
    def bearer_token(self) -> str | None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Close the socket without writing anything: what a client sees when a proxy dies mid-request.
    drop_connection: bool = False


def hal(payload: Any, status: int = 200) -> Response:
    return Response(status, _dump(payload), HAL_JSON)


def plain_json(payload: Any, status: int = 200) -> Response:
    return Response(status, _dump(payload), PLAIN_JSON)


def no_content() -> Response:
    """amoCRM's answer to an empty list or search: 204 and not a single byte of body."""
    return Response(204)


def problem(status: int, title: str, detail: str, *, type_: str | None = None, **extra: Any) -> Response:
    payload = {"title": title, "type": type_ or f"https://httpstatus.es/{status}", "status": status, "detail": detail}
    payload.update(extra)
    return Response(status, _dump(payload), PROBLEM_JSON)


def bad_request(detail: str) -> Response:
    return problem(400, "Bad Request", detail)


def redirect(location: str) -> Response:
    return Response(302, b"", HTML, {"Location": location})


_NGINX_REASONS = {
    403: "Forbidden",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def nginx_page(status: int) -> Response:
    """The HTML error page amoCRM's front proxy answers with: no JSON, no Retry-After."""
    title = f"{status} {_NGINX_REASONS.get(status, 'Error')}"
    body = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            f"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    return Response(status, body.encode(), HTML)


def html_page(status: int, title: str, text: str) -> Response:
    body = f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>"
    return Response(status, body.encode(), HTML)


def _dump(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


Handler = Callable[..., Response]


class Router:
    """Method + path pattern → handler.

    `{name}` in a pattern matches a numeric id, passed to the handler as an int; `{name:str}` matches
    one path segment, passed as a string.
    """

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern, Handler]] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        regex = re.compile("^" + re.sub(r"\{(\w+)(:str)?\}", _placeholder, pattern) + "/?$")

        def register(handler: Handler) -> Handler:
            self._routes.append((method, regex, handler))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, int | str], bool]:
        """(handler, path parameters, whether the path exists under another method)."""
        path_known = False
        for route_method, regex, handler in self._routes:
            found = regex.match(path)
            if not found:
                continue
            if route_method == method:
                params = {key: int(value) if value.isdigit() else value for key, value in found.groupdict().items()}
                return handler, params, True
            path_known = True
        return None, {}, path_known


def _placeholder(found: re.Match) -> str:
    name, is_text = found.group(1), found.group(2)
    return f"(?P<{name}>[^/]+)" if is_text else f"(?P<{name}>\\d+)"
