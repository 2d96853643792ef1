"""A fake OpenAI-compatible chat-completions server on 127.0.0.1, in a thread.

It answers ``POST /v1/chat/completions`` from a script: a list of turns, one per
request, each a :class:`Turn` (text and/or tool calls), an HTTP error, or a stream
that hangs after a few chunks (for cancel). ``stream: true`` requests get
server-sent events with the text in pieces and every tool call's arguments split
over two chunks, as real servers send them. Every request body is kept in
``requests`` so tests can look at what the model was sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Turn:
    text: str = ""
    calls: list[tuple[str, dict]] = field(default_factory=list)  # (tool name, arguments)
    status: int = 200
    error: str | None = None  # an error body {"error": {"message": ...}} with ``status``
    hang_after_chunks: int | None = None  # streaming: send this many chunks, then go silent


class FakeProvider:
    def __init__(self, turns: list[Turn] | None = None, *, model: str = "fake-model"):
        self.turns = list(turns or [])
        self.model = model
        self.requests: list[dict] = []
        self.release = threading.Event()  # lets a hanging stream end at teardown
        self.hung = threading.Event()  # set once a stream has gone silent
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(body)
                if not self.path.endswith("/chat/completions"):
                    return self._json(404, {"error": {"message": "not found"}})
                if body.get("model") != fake.model:
                    return self._json(404, {"error": {"message": f"model \"{body.get('model')}\" not found, "
                                                                 f"try pulling it first", "type": "api_error"}})
                turn = fake.turns.pop(0) if fake.turns else Turn(text="(no more scripted turns)")
                if turn.error is not None:
                    return self._json(turn.status, {"error": {"message": turn.error}})
                if body.get("stream"):
                    return self._stream(turn)
                message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
                if turn.calls:
                    message["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                                              "function": {"name": n, "arguments": json.dumps(a)}}
                                             for i, (n, a) in enumerate(turn.calls)]
                self._json(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": fake.model,
                                 "choices": [{"index": 0, "message": message,
                                              "finish_reason": "tool_calls" if turn.calls else "stop"}]})

            def _json(self, status: int, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _stream(self, turn: Turn) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                chunks: list[dict] = []
                words = turn.text.split(" ") if turn.text else []
                for i, word in enumerate(words):
                    chunks.append({"content": (" " if i else "") + word})
                for i, (name, args) in enumerate(turn.calls):
                    text = json.dumps(args)
                    half = len(text) // 2
                    chunks.append({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                                   "function": {"name": name, "arguments": text[:half]}}]})
                    chunks.append({"tool_calls": [{"index": i, "function": {"arguments": text[half:]}}]})
                try:
                    for n, delta in enumerate(chunks):
                        if turn.hang_after_chunks is not None and n == turn.hang_after_chunks:
                            fake.hung.set()
                            fake.release.wait(30)
                            return
                        self._event({"id": "c", "object": "chat.completion.chunk", "model": fake.model,
                                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                        time.sleep(0.005)
                    if turn.hang_after_chunks is not None:
                        fake.hung.set()
                        fake.release.wait(30)
                        return
                    self._event({"id": "c", "object": "chat.completion.chunk", "model": fake.model,
                                 "choices": [{"index": 0, "delta": {},
                                              "finish_reason": "tool_calls" if turn.calls else "stop"}]})
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _event(self, data: dict) -> None:
                self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FakeProvider":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
