"""A small OpenAI-compatible server that misbehaves on purpose, for the refiner's tests.

The request's `model` picks the fault: "429-then-ok", "500", "hang", "401", "prose", ... Anything
after a '#' is ignored, so a test can take a fresh call counter with "429-then-ok#<unique>". Every
request is recorded (path, headers, body) for the tests to inspect.

Two see images: "sees" decodes each image that follows a "Reference N" line and names its subject by
its colour ("red subject"), as a vision model names what a photo shows; "sees-one" names only the
first. "blind" answers a request holding images as llama-server without a projector does (500,
"image input is not supported"). "advice" advises num_frames 1000 and guidance_scale 30, what the
test LLM wrote when a prompt asked for them. "board" writes a storyboard of as many prompts as asked.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VALID = {
    "prompt": "A tabby cat sitting on a wooden floor slowly turns its head to the left, ears twitching, "
    "soft window light falling across its fur. The camera slowly pushes in.",
    "negative_prompt": "blurry, distorted",
    "camera_motion": "Dolly In",  # servers write tokens loosely; the refiner normalises them
    "motion_tags": ["slow_motion", "subtle"],
    "motion_intensity": 0.4,
    "subjects": ["cat"],
    "suggestions": {"num_frames": 5000, "fps": None, "guidance_scale": None},  # out of range on purpose
}
LONG = {**VALID, "prompt": " ".join(["The cat turns its head slowly."] * 80)}
HANG_SECONDS = 8
COLOURS = {"red": (255, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
           "white": (255, 255, 255), "black": (0, 0, 0)}  # fmt: skip


def seen_references(body: dict) -> list[str]:
    """The subject of each image after a "Reference N" text part of the last message, named by its
    colour (the nearest of COLOURS to its mean), in order."""
    from PIL import Image, ImageStat

    content = body["messages"][-1]["content"]
    if not isinstance(content, list):
        return []
    names = []
    for before, part in zip(content, content[1:]):
        if part.get("type") == "image_url" and before.get("type") == "text" and before["text"].startswith("Reference "):
            data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            mean = ImageStat.Stat(Image.open(io.BytesIO(data)).convert("RGB")).mean
            colour = min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLOURS[name], mean)))
            names.append(f"{colour} subject")
    return names


def has_images(body: dict) -> bool:
    return any(isinstance(m.get("content"), list) and any(p.get("type") == "image_url" for p in m["content"])
               for m in body.get("messages", []))  # fmt: skip


class FaultyLLM:
    def __init__(self):
        self.requests: list[dict] = []
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def formats(self, model: str) -> list[str | None]:
        """The response_format type of each request made for `model`, in order."""
        return [
            (r["body"].get("response_format") or {}).get("type") for r in self.requests if r["body"].get("model") == model
        ]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "faulty", "object": "model"}]})

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                model = str(body.get("model", ""))
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                    fake.calls[model] += 1
                    call = fake.calls[model]
                fault = model.split("#")[0]
                fmt = (body.get("response_format") or {}).get("type")
                auth = self.headers.get("authorization", "")

                if fault == "ok":
                    return self._reply(json.dumps(VALID))
                if fault == "long":
                    return self._reply(json.dumps(LONG))
                if fault == "429-then-ok":
                    if call == 1:
                        return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0.2"})
                    return self._reply(json.dumps(VALID))
                if fault == "429":
                    return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0.1"})
                if fault == "500-then-ok":
                    if call <= 2:
                        return self._send(500, {"error": {"message": "internal error"}})
                    return self._reply(json.dumps(VALID))
                if fault == "500":
                    return self._send(500, {"error": {"message": f"internal error, your header was {auth}"}})
                if fault == "401":
                    return self._send(401, {"error": {"message": f"Incorrect API key provided: {auth}"}})
                if fault == "403":
                    return self._send(403, {"error": {"message": "forbidden"}})
                if fault == "hang":
                    time.sleep(HANG_SECONDS)
                    return self._reply(json.dumps(VALID))
                if fault == "prose":
                    return self._reply("Sure! Here is the video prompt:\n```json\n" + json.dumps(VALID) + "\n```\nEnjoy!")
                if fault == "truncated":
                    return self._reply(json.dumps(VALID)[:60])
                if fault == "truncated-then-ok":
                    return self._reply(json.dumps(VALID)[:60] if call == 1 else json.dumps(VALID))
                if fault == "wrong-types":
                    return self._reply(json.dumps({**VALID, "prompt": 5, "motion_intensity": "high", "subjects": "cat"}))
                if fault == "empty":
                    return self._reply("")
                if fault == "no-json-schema":
                    if fmt == "json_schema":
                        return self._send(400, {"error": {"message": "response_format json_schema is not supported"}})
                    return self._reply(json.dumps(VALID))
                if fault == "text-only":
                    if fmt is not None:
                        return self._send(400, {"error": {"message": "response_format is not supported"}})
                    return self._reply("Here you go: " + json.dumps(VALID))
                if fault in ("sees", "sees-one"):
                    names = seen_references(body)[: 1 if fault == "sees-one" else None]
                    prompt = " and ".join(f"the {name}" for name in names).capitalize() + " move slowly apart."
                    return self._reply(json.dumps({**VALID, "prompt": prompt, "subjects": names}))
                if fault == "blind":
                    if has_images(body):
                        return self._send(500, {"error": {"code": 500, "type": "server_error", "message":
                                          "image input is not supported - hint: if this is unexpected, you may need "
                                          "to provide the mmproj"}})  # fmt: skip
                    return self._reply(json.dumps(VALID))
                if fault == "advice":
                    return self._reply(json.dumps({**VALID, "suggestions": {"num_frames": 1000, "fps": 120,
                                                                            "guidance_scale": 30}}))  # fmt: skip
                if fault == "board":  # a storyboard of as many prompts as the schema asks for (2 without one)
                    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema", {})
                    count = schema.get("properties", {}).get("segments", {}).get("minItems", 2)
                    segments = [f"The cat turns its head slowly, part {k} of {count}." for k in range(1, count + 1)]
                    return self._reply(json.dumps({"segments": segments, "negative_prompt": "blurry"}))
                if fault == "injected":
                    # What a model that obeyed an injected instruction might say.
                    return self._reply(json.dumps({**VALID, "num_frames": 100000, "guidance_scale": 99,
                                                   "suggestions": {"num_frames": -4, "fps": 500, "guidance_scale": 99}}))  # fmt: skip
                return self._send(404, {"error": {"message": f"unknown model {model}"}})

            def _reply(self, content: str):
                self._send(200, {
                    "id": "chatcmpl-faulty", "object": "chat.completion", "created": int(time.time()), "model": "faulty",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                })  # fmt: skip

            def _send(self, status: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the "hang" fault)

        return Handler
