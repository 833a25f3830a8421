"""A fake Telegram Bot API server on 127.0.0.1 for end-to-end tests of the real Application.

It speaks the Bot API's JSON over real HTTP (the methods citebot uses), long-polls getUpdates
with offsets and timeouts, rejects what Telegram would reject (unknown or unbalanced HTML tags,
a bare '<' or '&', text over 4096 UTF-16 units, unknown methods), can answer 429 with
retry_after, and records every call for the tests to assert on.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import sys
import threading
import time
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote

ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
                "pre", "blockquote", "tg-emoji"}
_TAG = re.compile(r"""<(/?)([a-zA-Z][\w-]*)((?:\s+[\w-]+(?:\s*=\s*(?:"[^"<>]*"|'[^'<>]*'))?)*)\s*>""")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
STRING_PARAMS = {"text", "query", "parse_mode", "callback_query_id", "inline_query_id", "action", "url",
                 "secret_token", "next_offset"}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_telegram_html(text: str) -> str:
    """The visible text of a Telegram HTML message; ValueError with Telegram's complaint if invalid."""
    out, stack, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            m = _TAG.match(text, i)
            if not m:
                raise ValueError(f"Can't parse entities: unexpected '<' at byte offset {i}")
            closing, name = m.group(1), m.group(2).lower()
            if name not in ALLOWED_TAGS:
                raise ValueError(f'Can\'t parse entities: unsupported start tag "{name}" at byte offset {i}')
            if closing:
                if not stack or stack[-1] != name:
                    raise ValueError(f'Can\'t parse entities: unmatched end tag at byte offset {i}, expected "</{stack[-1] if stack else ""}>"')
                stack.pop()
            else:
                stack.append(name)
            i = m.end()
        elif ch == "&":
            m = _ENTITY.match(text, i)
            if not m:
                raise ValueError(f"Can't parse entities: unsupported entity at byte offset {i}")
            out.append(unescape(m.group()))
            i = m.end()
        else:
            out.append(ch)
            i += 1
    if stack:
        raise ValueError(f'Can\'t parse entities: can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # a busy bot opens many connections at once
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client closing a kept-alive connection is normal (the bot stopping, a pool recycling)."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class FakeTelegram:
    """The server, its state, and helpers to push updates and wait for the bot's calls."""

    def __init__(self, token: str = "123456:TEST-token", username: str = "citebot_test_bot"):
        self.token = token
        self.bot_user = {"id": int(token.split(":")[0]), "is_bot": True, "first_name": "citebot",
                         "username": username, "can_join_groups": True, "can_read_all_group_messages": False,
                         "supports_inline_queries": True}
        self.username = username
        self.calls: list[tuple[str, dict, float]] = []  # every call, refused ones included
        self._accepted: list[tuple[str, dict]] = []
        self.messages: dict[tuple[int, int], dict] = {}  # the bot's messages, as last sent or edited
        self._known: set[tuple[int, int]] = set()  # every message id a reply may point at
        self._updates: list[dict] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._failures: dict[str, list[int]] = {}
        self.chat_admins: dict[int, set[int]] = {}  # chat id -> its admins' user ids (getChatMember)
        self.files: dict[str, bytes] = {}  # file_id -> content, served by getFile and /file/bot<token>/
        self.blocked: set[int] = set()  # users who blocked the bot: sendMessage to them is 403 Forbidden
        self._cond = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> "FakeTelegram":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/file/bot"

    # -- what the tests do ----------------------------------------------------------------------

    def push(self, **update) -> int:
        """Queue an update (e.g. message={...}); returns its update_id."""
        with self._cond:
            update_id = next(self._update_ids)
            self._updates.append({"update_id": update_id, **update})
            for value in update.values():
                if isinstance(value, dict) and "chat" in value and "message_id" in value:
                    self._known.add((value["chat"]["id"], value["message_id"]))
            self._cond.notify_all()
        return update_id

    def delivered(self, update: dict) -> None:
        """Note the messages of an update that a test delivered itself (to a webhook), so that the
        bot may reply to them, as push() does for the updates it queues."""
        with self._cond:
            for value in update.values():
                if isinstance(value, dict) and "chat" in value and "message_id" in value:
                    self._known.add((value["chat"]["id"], value["message_id"]))

    def add_file(self, content: bytes) -> dict:
        """A Document's file fields for content the bot can download with getFile."""
        file_id = f"file{len(self.files) + 1}"
        self.files[file_id] = content
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(content)}

    def fail_next(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of method with 429 Too Many Requests."""
        with self._cond:
            self._failures.setdefault(method, []).extend([retry_after] * times)

    def break_next(self, method: str, times: int = 1) -> None:
        """Answer the next `times` calls of method with 502 Bad Gateway (Telegram's side failing)."""
        with self._cond:
            self._failures.setdefault(method, []).extend([0] * times)

    def sent(self, method: str | None = None) -> list[dict]:
        """Parameters of the calls the server accepted, oldest first."""
        with self._cond:
            return [params for name, params in self._accepted if method is None or name == method]

    def position(self, params: dict) -> int:
        """Where an accepted call stands in the order the server accepted them."""
        with self._cond:
            return next(i for i, (_, p) in enumerate(self._accepted) if p is params)

    def replies_to(self, chat_id: int, message_id: int) -> list[dict]:
        return [p for p in self.sent("sendMessage")
                if p["chat_id"] == chat_id and (p.get("reply_parameters") or {}).get("message_id") == message_id]

    async def wait_for(self, predicate, timeout: float = 60.0, what: str = "the bot's calls"):
        """Poll until predicate() is truthy (returning its value), or fail after timeout seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; calls: {[c[0] for c in self.calls]}")

    # -- the Bot API ----------------------------------------------------------------------------

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as api.telegram.org

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                self._serve()

            def do_GET(self):
                self._serve()

            def _serve(self):
                download = re.match(r"^/file/bot([^/]+)/documents/(\w+)$", unquote(self.path))
                if download and download.group(1) == fake.token and download.group(2) in fake.files:
                    data = fake.files[download.group(2)]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                m = re.match(r"^/bot([^/]+)/(\w+)$", self.path.split("?")[0])
                if not m or m.group(1) != fake.token:
                    return self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = fake._parse(self.headers.get("Content-Type", ""), body)
                status, payload = fake._call(m.group(2), params)
                self._reply(status, payload)

            def _reply(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the bot closed a long poll while shutting down, as real clients do

        return Handler

    @staticmethod
    def _parse(content_type: str, body: str) -> dict:
        if "json" in content_type:
            return json.loads(body or "{}")
        params = {}
        for key, value in parse_qsl(body, keep_blank_values=True):
            if key in STRING_PARAMS:
                params[key] = value
                continue
            try:
                params[key] = json.loads(value)
            except json.JSONDecodeError:
                params[key] = value
        return params

    def _call(self, method: str, params: dict) -> tuple[int, dict]:
        with self._cond:
            self.calls.append((method, params, time.monotonic()))
            queue = self._failures.get(method)
            if queue:
                retry_after = queue.pop(0)
                if not retry_after:
                    return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
                return 429, {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry_after}",
                             "parameters": {"retry_after": retry_after}}
        if method == "sendMessage" and int(params.get("chat_id") or 0) in self.blocked:
            return 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        try:
            result = handler(params)
            with self._cond:
                self._accepted.append((method, params))
            return 200, {"ok": True, "result": result}
        except ValueError as exc:
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}

    def _api_getChatMember(self, params):
        """Creators are the ids in chat_admins (per chat id); everyone else is a member."""
        user_id = int(params["user_id"])
        user = {"id": user_id, "is_bot": False, "first_name": f"u{user_id}"}
        if user_id in self.chat_admins.get(int(params["chat_id"]), ()):
            return {"status": "creator", "user": user, "is_anonymous": False}
        return {"status": "member", "user": user}

    def _api_getMe(self, params):
        return self.bot_user

    def _api_deleteWebhook(self, params):
        return True

    def _api_setWebhook(self, params):
        if not str(params.get("url", "")).startswith("https://"):
            raise ValueError("bad webhook: An HTTPS URL must be provided for webhook")
        return True

    def _api_setMyDescription(self, params):
        if len(params.get("description") or "") > 512:
            raise ValueError("BOT_DESCRIPTION_INVALID")
        return True

    def _api_setMyShortDescription(self, params):
        if len(params.get("short_description") or "") > 120:
            raise ValueError("BOT_DESCRIPTION_INVALID")
        return True

    def _api_setMyCommands(self, params):
        for command in params["commands"]:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command["command"]) or not command["description"]:
                raise ValueError("BOT_COMMAND_INVALID")
        return True

    def _api_getFile(self, params):
        file_id = params.get("file_id")
        if file_id not in self.files:
            raise ValueError("wrong file_id or the file is temporarily unavailable")
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(self.files[file_id]),
                "file_path": f"documents/{file_id}"}

    def _api_sendChatAction(self, params):
        return True

    def _api_answerCallbackQuery(self, params):
        return True

    def _api_getUpdates(self, params):
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self._cond:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            return self._updates[: int(params.get("limit") or 100)]

    def _check_markup(self, params: dict) -> None:
        for row in (params.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                if len(button.get("callback_data", "").encode()) > 64 or not button.get("text"):
                    raise ValueError("BUTTON_DATA_INVALID")

    def _check_text(self, text: str, parse_mode: str | None) -> None:
        visible = parse_telegram_html(text) if parse_mode == "HTML" else text
        if not visible.strip():
            raise ValueError("message text is empty")
        if utf16_len(visible) > 4096:
            raise ValueError("message is too long")

    def _message(self, params: dict, message_id: int) -> dict:
        chat_id = params["chat_id"]
        message = {"message_id": message_id, "date": int(time.time()), "from": self.bot_user,
                   "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
                   "text": parse_telegram_html(params["text"]) if params.get("parse_mode") == "HTML" else params["text"]}
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    def _api_sendMessage(self, params):
        self._check_text(params["text"], params.get("parse_mode"))
        self._check_markup(params)
        reply = params.get("reply_parameters") or {}
        with self._cond:
            if reply and (params["chat_id"], reply["message_id"]) not in self._known \
                    and not reply.get("allow_sending_without_reply"):
                raise ValueError("message to be replied not found")
            message = self._message(params, next(self._message_ids))
            self.messages[(params["chat_id"], message["message_id"])] = message
            self._known.add((params["chat_id"], message["message_id"]))
        return message

    def _api_editMessageText(self, params):
        key = (params["chat_id"], params["message_id"])
        with self._cond:
            if key not in self.messages:
                raise ValueError("message to edit not found")
        self._check_text(params["text"], params.get("parse_mode"))
        self._check_markup(params)
        message = self._message(params, params["message_id"])
        with self._cond:
            old = self.messages[key]
            if old["text"] == message["text"] and old.get("reply_markup") == message.get("reply_markup"):
                raise ValueError("message is not modified: specified new message content and reply markup are "
                                 "exactly the same as a current content and reply markup of the message")
            self.messages[key] = message
        return message

    def _api_answerInlineQuery(self, params):
        results = params.get("results") or []
        if len(results) > 50 or len({r["id"] for r in results}) != len(results):
            raise ValueError("RESULTS_TOO_MUCH or duplicate result ids")
        for r in results:
            if len(r["id"].encode()) > 64:
                raise ValueError("RESULT_ID_INVALID")
            if not r.get("title"):
                raise ValueError("RESULT_TITLE_EMPTY")
            content = r["input_message_content"]
            self._check_text(content["message_text"], content.get("parse_mode"))
        return True
