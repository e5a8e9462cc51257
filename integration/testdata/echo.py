# A raw TCP echo server (not HTTP) for the `chaser forward` tests: every
# connection gets back what it sends, prefixed by "echo:" once.
import socketserver, sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"echo:")
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
