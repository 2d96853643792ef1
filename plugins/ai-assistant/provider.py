"""A client for OpenAI-compatible chat completions with tool calling, over ``ctx.http``.

Works with Ollama, llama.cpp's server, vLLM and hosted providers that speak
``POST {baseUrl}/chat/completions``. Replies can be streamed (server-sent events:
``data: {...}`` lines ending with ``data: [DONE]``); text arrives through
``on_delta`` as it comes, tool calls are assembled from their fragments.

Every failure is a :class:`ProviderError` whose message is one sentence a rep can
act on (unreachable provider, unknown model, a model that cannot call tools, a
timeout, a refused key). A :class:`CancelToken` stops a request from another
thread: it closes the connection, so even a provider that has gone silent
mid-stream lets go at once.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from crm_desktop.plugin_api import PermissionDenied


class ProviderError(Exception):
    """The provider could not answer; ``str(error)`` is one sentence for the rep.

    ``kind``: ``not-configured``, ``host-not-allowed``, ``unreachable``, ``timeout``,
    ``unknown-model``, ``no-tools``, ``auth``, ``bad-response``, ``cancelled``.
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class Cancelled(ProviderError):
    """The rep cancelled the request."""

    def __init__(self) -> None:
        super().__init__("cancelled", "The request was cancelled.")


class CancelToken:
    """Cancel a request from any thread: ``token.cancel()``."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        self._event.set()
        with self._lock:
            response = self._response
        if response is not None:
            _abort(response)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def attach(self, response: Any) -> None:
        with self._lock:
            self._response = response
        if self._event.is_set():
            _abort(response)

    def detach(self) -> None:
        with self._lock:
            self._response = None


def _abort(response: Any) -> None:
    """Close a response's connection so a read blocked in another thread returns now.

    Closing a socket does not wake a thread blocked in ``recv`` on Linux; shutting it
    down does, so shut it down first when the connection is reachable.
    """
    raw = getattr(response, "raw", None)
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        # a "Connection: close" reply: http.client let go of the connection's socket, but the
        # response still reads from it (urllib3 response -> http.client response -> file -> socket)
        stream = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(stream, "raw", None), "_sock", None)
    if sock is not None:
        try:
            sock.shutdown(2)  # SHUT_RDWR
        except OSError:
            pass
    try:
        response.close()
    except Exception:
        pass


@dataclass
class ToolCall:
    """One function call the model asked for; ``arguments`` is its raw JSON text."""

    id: str
    name: str
    arguments: str = ""


@dataclass
class Reply:
    """The model's answer to one round: text, and tool calls if it wants any."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None

    def as_message(self) -> dict:
        """The assistant message to send back in the next round."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": c.arguments or "{}"}}
                                     for c in self.tool_calls]
        return message


class ChatClient:
    """``chat(messages, tools)`` against one provider and model."""

    def __init__(self, http: Any, base_url: str, model: str, *, api_key: str | None = None,
                 timeout: float = 60.0, connect_timeout: float = 5.0):
        base_url = (base_url or "").strip()
        model = (model or "").strip()
        if not base_url or not model:
            raise ProviderError("not-configured",
                                "No model provider is set up: set baseUrl and model with "
                                "`crm-desktop plugin config ai-assistant baseUrl=http://127.0.0.1:11434/v1 "
                                "model=NAME`.")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProviderError("not-configured",
                                f"baseUrl {base_url!r} is not an http(s) URL such as http://127.0.0.1:11434/v1.")
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key or None
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def chat(self, messages: list[dict], tools: list[dict] | None = None, *, stream: bool = False,
             on_delta: Callable[[str], None] | None = None, cancel: CancelToken | None = None) -> Reply:
        """One round: send ``messages`` (and ``tools``), return the model's :class:`Reply`."""
        cancel = cancel or CancelToken()
        cancel.raise_if_cancelled()
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": bool(stream)}
        if tools:
            body["tools"] = tools
            body["tool_choice"] = "auto"
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        response = self._post(body, headers, stream, cancel)
        cancel.attach(response)
        try:
            if response.status_code >= 400:
                raise self._http_error(response)
            if stream:
                return self._read_stream(response, on_delta, cancel)
            return self._read_whole(response)
        except ProviderError:
            raise
        except Exception as exc:  # a read that failed because cancel closed the connection
            if cancel.cancelled:
                raise Cancelled() from None
            raise self._transport_error(exc) from None
        finally:
            cancel.detach()
            try:
                response.close()
            except Exception:
                pass

    # ------------------------------------------------------------------ transport

    def _post(self, body: dict, headers: dict, stream: bool, cancel: CancelToken) -> Any:
        try:
            return self.http.post(self.url, data=json.dumps(body), headers=headers, stream=stream,
                                  timeout=(self.connect_timeout, self.timeout))
        except PermissionDenied as exc:
            host = urlsplit(self.base_url).hostname
            if exc.permission == "network" and "network.hosts" in str(exc):
                raise ProviderError("host-not-allowed",
                                    f"The provider host {host!r} is not in the ai-assistant plugin's network.hosts; "
                                    f"add it to plugin.json (loopback 127.0.0.1 and localhost are allowed).") from None
            raise ProviderError("host-not-allowed",
                                f"The ai-assistant plugin may not use the network ({exc.reason}).") from None
        except Exception as exc:
            if cancel.cancelled:
                raise Cancelled() from None
            raise self._transport_error(exc) from None

    def _transport_error(self, exc: Exception) -> ProviderError:
        import requests

        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return ProviderError("unreachable", f"The model provider at {self.base_url} did not accept a connection "
                                                f"within {self.connect_timeout:g} s; check that it is running.")
        if isinstance(exc, (requests.exceptions.ReadTimeout, requests.exceptions.Timeout)):
            return ProviderError("timeout", f"The model provider at {self.base_url} did not answer within "
                                            f"{self.timeout:g} s; try again or raise timeoutSeconds.")
        if isinstance(exc, requests.exceptions.ConnectionError):
            cause = str(exc)
            if "timed out" in cause.lower() or "Read timed out" in cause:
                return ProviderError("timeout", f"The model provider at {self.base_url} did not answer within "
                                                f"{self.timeout:g} s; try again or raise timeoutSeconds.")
            if "Connection refused" in cause or "Failed to establish" in cause or "Name or service" in cause \
                    or "NameResolution" in cause or "Max retries" in cause:
                return ProviderError("unreachable", f"The model provider at {self.base_url} is unreachable; "
                                                    f"check that it is running and that baseUrl is right.")
            return ProviderError("unreachable", f"The connection to the model provider at {self.base_url} "
                                                f"broke off before it answered.")
        return ProviderError("bad-response", f"The model provider at {self.base_url} failed: "
                                             f"{type(exc).__name__}: {str(exc)[:200]}.")

    def _http_error(self, response: Any) -> ProviderError:
        status = response.status_code
        try:
            text = response.text or ""
        except Exception:
            text = ""
        message = _error_message(text)
        lowered = message.lower()
        if status in (401, 403):
            return ProviderError("auth", f"The model provider refused the API key (HTTP {status}); "
                                         f"check the apiKey setting.")
        if "tool" in lowered and ("support" in lowered or "jinja" in lowered or "enable-auto-tool-choice" in lowered
                                  or "not enabled" in lowered):
            return ProviderError("no-tools", f"The model {self.model!r} cannot call tools at this provider "
                                             f"({message[:160]}); choose a model with tool calling.")
        if status == 404 and ("model" in lowered or not message):
            return ProviderError("unknown-model", f"The provider does not know the model {self.model!r}; check the "
                                                  f"model setting (for Ollama: `ollama pull {self.model}`).")
        if "model" in lowered and ("not found" in lowered or "does not exist" in lowered or "unknown" in lowered):
            return ProviderError("unknown-model", f"The provider does not know the model {self.model!r}; check the "
                                                  f"model setting (for Ollama: `ollama pull {self.model}`).")
        return ProviderError("bad-response", f"The model provider answered HTTP {status}: "
                                             f"{(message or 'no details')[:200]}.")

    # ------------------------------------------------------------------ replies

    def _read_whole(self, response: Any) -> Reply:
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except Exception:
            raise ProviderError("bad-response", f"The model provider at {self.base_url} did not answer with a "
                                                f"chat completion (no choices in the reply).") from None
        calls = [ToolCall(id=str(c.get("id") or f"call_{i}"), name=str((c.get("function") or {}).get("name") or ""),
                          arguments=_arguments_text((c.get("function") or {}).get("arguments")))
                 for i, c in enumerate(message.get("tool_calls") or [])]
        return Reply(content=message.get("content") or "", tool_calls=calls, finish_reason=choice.get("finish_reason"))

    def _read_stream(self, response: Any, on_delta: Callable[[str], None] | None, cancel: CancelToken) -> Reply:
        content: list[str] = []
        calls: dict[int, ToolCall] = {}
        finish = None
        deadline = time.monotonic() + max(self.timeout * 10, 600)  # a stream may not run for ever
        saw_data = False
        for raw_line in response.iter_lines(chunk_size=1, decode_unicode=False):
            cancel.raise_if_cancelled()
            if time.monotonic() > deadline:
                raise ProviderError("timeout", "The model provider kept streaming far past the timeout; stopped.")
            line = raw_line.decode("utf-8", "replace").strip() if isinstance(raw_line, bytes) else str(raw_line).strip()
            if not line or line.startswith(":") or not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            try:
                chunk = json.loads(payload)
            except ValueError:
                raise ProviderError("bad-response", "The model provider sent a streamed chunk that is not JSON.") from None
            if isinstance(chunk, dict) and chunk.get("error"):
                raise self._stream_error(chunk["error"])
            saw_data = True
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                text = delta.get("content")
                if text:
                    content.append(text)
                    if on_delta is not None:
                        on_delta(text)
                for fragment in delta.get("tool_calls") or []:
                    index = int(fragment.get("index", len(calls)))
                    call = calls.setdefault(index, ToolCall(id="", name=""))
                    if fragment.get("id"):
                        call.id = str(fragment["id"])
                    function = fragment.get("function") or {}
                    if function.get("name"):
                        call.name += str(function["name"])
                    if function.get("arguments"):
                        call.arguments += _arguments_text(function["arguments"])
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        cancel.raise_if_cancelled()
        if not saw_data:
            raise ProviderError("bad-response", f"The model provider at {self.base_url} ended the stream "
                                                f"without an answer.")
        ordered = [calls[i] for i in sorted(calls)]
        for i, call in enumerate(ordered):
            call.id = call.id or f"call_{i}"
        return Reply(content="".join(content), tool_calls=ordered, finish_reason=finish)

    def _stream_error(self, error: Any) -> ProviderError:
        class _Fake:
            status_code = 400
            text = json.dumps({"error": error})

        return self._http_error(_Fake())


def _arguments_text(value: Any) -> str:
    """Arguments as JSON text (some servers send an object instead of a string)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _error_message(text: str) -> str:
    """The message inside an OpenAI-style error body, or the body itself."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or "")
    if isinstance(error, str):
        return error
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return text.strip()[:300]
