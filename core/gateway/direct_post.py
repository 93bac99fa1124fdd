"""The proxy path's upstream POST: the SDK client's own connection pool, without its request builder.

A proxied call is one JSON POST whose body Quorum already holds as a dict. The SDK's
generic `client.post()` spends about a quarter of a millisecond of CPU per call building
options, merging headers and wrapping the response (measured against the same pool:
0.81 ms against 0.54 ms per call), a third of the upstream client's CPU. `DirectPost`
sends the same request (URL, headers the SDK sends, JSON bytes as the SDK serializes
them, the client's timeout) on the SDK client's own kept-alive HTTP client, so transport,
connection pool and test transports are the SDK's, and turns failures into the SDK's own
errors (`APITimeoutError`, `APIConnectionError`, and the status error the SDK's own
`_make_status_error_from_response` builds, `RateLimitError` with its headers and body),
so `core.gateway.upstream`'s retry loop (backoff, Retry-After, x-should-retry) sees
exactly what it would see from the SDK.

The request itself is built by the HTTP client once per path (URL merged with the client's,
headers merged with its defaults, the timeout as it sets it) and then reused with each
call's body: merging the same headers and URL again on every call cost a third of what
building the request costs. It is built again when the API key changes, and on every call
while the client holds cookies (their merge is the client's to do, as the SDK's request would).

Where the HTTP client would send it on its plain transport, the built request goes out on
`core.gateway.wire`'s own kept-alive sockets instead (the same bytes; the answer parsed in
C); test transports, proxies, event hooks, cookies and redirects keep the HTTP client.

It is used only where it is exactly the SDK's request: the plain `openai.OpenAI` client
with a fixed API key. Anything else (Azure, an API-key provider, workload identity, a
provider runtime, default query parameters, an SDK whose internals differ) gets no
`DirectPost` and keeps the SDK's `post()`. Streams, the Responses API's stored answers
and every other caller keep the SDK.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx
import openai

from core.gateway.wire import Answer, Wire

try:  # the SDK's own HTTP library (a fork of httpx); its errors are the SDK's too
    import httpx2
except ImportError:  # an SDK that uses httpx itself
    httpx2 = None

_TIMEOUTS: tuple[type[Exception], ...] = (httpx.TimeoutException,) + (
    (httpx2.TimeoutException,) if httpx2 is not None else ()
)
_REQUEST_ERRORS: tuple[type[Exception], ...] = (httpx.RequestError, ssl.SSLError) + (
    (httpx2.RequestError,) if httpx2 is not None else ()
)
_MISSING = object()
# Attributes of the SDK client that must be unset for its request to be the plain one built here.
_MUST_BE_NONE = ("_provider_runtime", "_workload_identity_auth", "_api_key_provider", "workload_identity")


class DirectPost:
    """POST a JSON body to ``base_url + path``; returns the read response, or raises the SDK's error."""

    def __init__(self, client: openai.OpenAI, http: Any) -> None:
        self._client, self._http = client, http
        self._base = str(client.base_url).rstrip("/")
        timeout = client.timeout
        read = timeout.read if isinstance(timeout, httpx.Timeout) or hasattr(timeout, "read") else timeout
        # What the SDK adds per request: its retry count (always 0, the gateway retries) and read timeout.
        self._headers = {
            **{k: v for k, v in client.default_headers.items() if isinstance(v, str)},
            "x-stainless-retry-count": "0",
        }
        if read is not None:
            self._headers["x-stainless-read-timeout"] = str(read)
        self._timeout = _timeout_for(http, timeout)
        # path -> (API key, the request built for it, its head on the wire); see the module's story.
        self._built: dict[str, tuple[str, Any, bytes]] = {}
        # Sends the built request on sockets of its own where the library would send it plainly.
        self._wire = Wire.for_http(http, client.base_url, self._timeout)

    @classmethod
    def for_client(cls, client: Any) -> DirectPost | None:
        """A `DirectPost` for `client`, or None when its requests are not the plain ones built here."""
        if type(client) is not openai.OpenAI:
            return None
        if any(getattr(client, name, _MISSING) is not None for name in _MUST_BE_NONE):
            return None  # set, or an SDK without these attributes: not known to be plain
        api_key = getattr(client, "api_key", None)
        http = getattr(client, "_client", None)
        if not isinstance(api_key, str) or not api_key or client.default_query or not hasattr(http, "send"):
            return None
        try:
            auth = client.auth_headers
        except Exception:  # noqa: BLE001 - any doubt: the SDK posts
            return None
        if auth != {"Authorization": f"Bearer {api_key}"}:
            return None
        return cls(client, http)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        # Serialized as the SDK's openapi_dumps does (httpx's JSON defaults).
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        wire = self._wire
        if wire is not None and not self._http.cookies:
            built = self._built.get(path)
            if built is None or built[0] != self._client.api_key:
                self._request(path, content)  # builds this path's request and keeps it
                built = self._built[path]
            answer = wire.post(built[1], built[2], content)
            if 300 <= answer.status_code < 400 and not isinstance(answer, Answer):
                answer = self._follow(path, content, answer)
            if answer.status_code >= 400:
                raise self._client._make_status_error_from_response(answer) from None
            return answer
        request = self._request(path, content)
        response = self._send(request, request)
        if response.status_code >= 400:
            raise self._client._make_status_error_from_response(response) from None
        return response

    def _follow(self, path: str, content: bytes, redirect: Any) -> Any:
        """The library follows a redirect the wire received, as it follows its own."""
        request = self._request(path, content)
        redirect.request = request
        return self._send(self._http._build_redirect_request(request, redirect), request)

    def _send(self, request: Any, named: Any) -> Any:
        """`request` sent by the library; its failures as the SDK's errors (naming `named`)."""
        try:
            response = self._http.send(request)
        except _TIMEOUTS as error:
            raise openai.APITimeoutError(request=named) from error
        except openai.OpenAIError:
            raise
        except _REQUEST_ERRORS as error:
            raise openai.APIConnectionError(request=named) from error
        if response.status_code >= 400:
            response.read()
        return response

    def _request(self, path: str, content: bytes) -> Any:
        api_key = self._client.api_key
        built = self._built.get(path)
        if built is not None and built[0] == api_key and not self._http.cookies:
            model = built[1]
            # The library's own Request: it copies the headers and sets this body's length.
            return type(model)("POST", model.url, headers=model.headers, content=content, extensions=model.extensions)
        headers = {**self._headers, "Authorization": f"Bearer {api_key}"}
        request = self._http.build_request(
            "POST", self._base + path, content=content, headers=headers, timeout=self._timeout
        )
        if not self._http.cookies:
            model = type(request)("POST", request.url, headers=request.headers, extensions=dict(request.extensions))
            del model.headers["content-length"]  # each body sets its own
            self._built[path] = (api_key, model, _head(model))
        return request


def _head(request: Any) -> bytes:
    """The request line and headers of `request` as the library writes them (HTTP/1.1)."""
    lines = [b"POST " + request.url.raw_path + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in request.headers.raw]
    return b"\r\n".join(lines) + b"\r\n"


def _timeout_for(http: Any, timeout: Any) -> Any:
    """The client's timeout in the HTTP library's own type, as the SDK converts it.

    An `httpx.Timeout` given to the SDK (as `Upstream.from_settings` does) means nothing to
    the SDK's own HTTP library (a fork of httpx) and the other way round."""
    own = type(getattr(http, "timeout", None))
    if hasattr(timeout, "as_dict") and type(timeout) is not own and hasattr(own, "as_dict"):
        return own(**timeout.as_dict())
    return timeout
