"""The review page's server: this machine only, this review's files only, two things it may write.

* Bound to 127.0.0.1; a request whose Host is not this server's, or whose Origin is another site's, is refused
  (a page elsewhere cannot read frames or post edits through the reviewer's browser).
* Routes are fixed names; a frame or a track is a number, so nothing in a request reaches the file system.
* Writes: the corrections (``POST /api/edit``, ``/api/add``, ``/api/undo``) and the approval (``/api/approve``),
  JSON bodies only (a form on another site cannot send one without an Origin).
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from deidcli.review.session import ReviewSession

STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/review.js": ("review.js", "text/javascript"),
          "/review.css": ("review.css", "text/css")}
MAX_BODY = 64 << 10


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, session: ReviewSession, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.session = session
        self.lock = threading.Lock()  # edits one at a time
        self.port = self.server_address[1]
        self.origins = {f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # the terminal shows the review's own lines, not every request
        pass

    # --- guards ---------------------------------------------------------------------------------------------------

    def _allowed(self, writing: bool) -> bool:
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        if f"http://{host}" not in self.server.origins:
            return self._refuse(HTTPStatus.FORBIDDEN, "unknown host")
        if origin is not None and origin not in self.server.origins:
            return self._refuse(HTTPStatus.FORBIDDEN, "another origin")
        if writing and (origin is None or not self.headers.get("Content-Type", "").startswith("application/json")):
            return self._refuse(HTTPStatus.FORBIDDEN, "edits come from the review page only")
        return True

    def _refuse(self, status: HTTPStatus, why: str) -> bool:
        self._send(status, json.dumps({"error": why}).encode(), "application/json")
        return False

    def _send(self, status: HTTPStatus, body: bytes, kind: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    # --- routes ---------------------------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not self._allowed(writing=False):
            return
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        session = self.server.session
        try:
            if url.path in STATIC:
                name, kind = STATIC[url.path]
                body = (resources.files("deidcli.review") / "static" / name).read_bytes()
                self._send(HTTPStatus.OK, body, kind)
            elif url.path == "/api/state":
                with self.server.lock:
                    self._json(session.state())
            elif url.path == "/api/regions":
                with self.server.lock:  # not while an edit changes the corrections
                    self._json(session.region_records(_int(query, "frame")))
            elif url.path == "/frame.jpg":
                which = query.get("video", "anonymized")
                if which not in session.sources:
                    raise KeyError(which)
                # the anonymized file changes on a re-render: cached by the page only with its version in the URL
                self._send(HTTPStatus.OK, session.sources[which].jpeg(_int(query, "n")), "image/jpeg")
            elif url.path == "/thumb.jpg":
                with self.server.lock:
                    thumb = session.thumbnail(_int(query, "track"), _int(query, "k"))
                self._send(HTTPStatus.OK, thumb, "image/jpeg", cache=True)
            else:
                self._refuse(HTTPStatus.NOT_FOUND, "no such page")
        except (KeyError, ValueError, IndexError) as exc:
            self._refuse(HTTPStatus.NOT_FOUND, str(exc))

    def do_POST(self) -> None:  # noqa: N802
        if not self._allowed(writing=True):
            return
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too large")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("a JSON object, please")
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, f"not JSON: {exc}")
            return
        session = self.server.session
        try:
            with self.server.lock:
                if url.path == "/api/add":
                    box = body.get("box")
                    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
                        raise ValueError("box: four numbers")
                    result = session.add_box(_int(body, "frame"), [float(v) for v in box], str(body.get("target", "face")))
                elif url.path == "/api/edit":
                    op = str(body.get("op"))
                    if op not in ("delete", "keep", "trim", "method"):
                        raise ValueError("op: delete, keep, trim or method")
                    first = _int(body, "first") if op == "trim" else None
                    last = _int(body, "last") if op == "trim" else None
                    method = str(body.get("method")) if op == "method" else None
                    session.edit(op, _int(body, "track_id"), first, last, method)
                    result = {"ok": True}
                elif url.path == "/api/undo":
                    result = {"undone": session.undo()}
                elif url.path == "/api/approve":
                    result = session.approve()
                else:
                    self._refuse(HTTPStatus.NOT_FOUND, "no such action")
                    return
            self._json(result)
        except (KeyError, ValueError, TypeError) as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, str(exc).strip("'\""))


def _int(values: dict, key: str) -> int:
    v = values[key]
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError(f"{key}: a whole number")
    return int(v)
