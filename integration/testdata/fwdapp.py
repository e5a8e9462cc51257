# A small app run inside sandboxes by the forwarding tests: HTTP/1.1 with
# keep-alive, a body echo, redirects, a slow stream and a WebSocket echo
# written by hand (the sandbox has no pip packages). Standard library only.
import base64, hashlib, json, struct, sys, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer and no Nagle delay: otherwise headers and body
    # go out as two packets and delayed ACKs add ~40 ms to every request,
    # which would hide what the benchmark measures.
    wbufsize = 64 << 10
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="text/plain", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/hello":
            self.reply(200, b"hello")
        elif path == "/headers":
            self.reply(200, self.received(), "application/json")
        elif path == "/redirect":
            self.reply(302, b"", headers=[("Location", "/hello")])
        elif path == "/redirect-abs":
            port = self.server.server_address[1]
            self.reply(302, b"", headers=[("Location", "http://localhost:%d/hello?x=1" % port)])
        elif path == "/redirect-away":
            self.reply(302, b"", headers=[("Location", "https://example.com/")])
        elif path == "/cookie":
            self.reply(200, b"ok", headers=[("Set-Cookie", "sid=1; Path=/; HttpOnly")])
        elif path == "/set-cookie":
            # Sets each ?c= as a Set-Cookie header, as written.
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            self.reply(200, b"ok", headers=[("Set-Cookie", c) for c in q.get("c", [])])
        elif path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in (b"first\n", b"second\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
                time.sleep(1.5)
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/sw.js":
            # A Service Worker asking to control the whole origin.
            self.reply(200, b"self.addEventListener('fetch', () => {});", "text/javascript",
                       headers=[("Service-Worker-Allowed", "/")])
        elif path == "/ws":
            self.websocket()
        elif path == "/ws-headers":
            self.websocket(first=self.received())
        else:
            self.reply(404, b"no such page")

    def received(self):
        """What the request brought: its path and headers (repeated ones joined), as JSON."""
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        return json.dumps({"path": self.path, "headers": headers}).encode()

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        if self.path.split("?")[0] == "/headers":
            self.reply(200, self.received(), "application/json")
            return
        self.reply(200, b"got " + self.command.encode() + b": " + body)

    do_PUT = do_POST

    def websocket(self, first=None):
        """Echoes messages; first, when given, is sent before anything."""
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        r, w = self.rfile, self.wfile
        if first is not None:
            hdr = bytes([0x81]) + (bytes([len(first)]) if len(first) < 126 else bytes([126]) + struct.pack(">H", len(first)))
            w.write(hdr + first)
            w.flush()
        while True:
            head = r.read(2)
            if len(head) < 2:
                return
            op, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", r.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", r.read(8))[0]
            mask = r.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(r.read(n)))
            if op == 8:  # close: answer it and stop
                w.write(bytes([0x88, len(data)]) + data)
                w.flush()
                self.close_connection = True
                return
            if op in (1, 2):
                out = b"echo:" + data
                hdr = bytes([0x80 | op])
                hdr += bytes([len(out)]) if len(out) < 126 else bytes([126]) + struct.pack(">H", len(out))
                w.write(hdr + out)
                w.flush()


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
