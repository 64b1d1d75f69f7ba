"""A throttling TCP proxy for the binding tests: forwards bytes both ways between its clients and
one upstream address, pacing each direction to `rate` bytes per second (shared by every
connection), so a backup through it takes seconds instead of milliseconds. Plain threads and
blocking sockets; `stop` closes every socket and joins every thread."""

import socket
import threading
import time

CHUNK = 16 * 1024


class Pacer:
    """Paces the bytes of one direction to `rate` bytes per second across all connections
    (`rate` None: unlimited). Each `take(n)` books the next n / rate seconds of the line and
    sleeps until they have passed, so the long-run throughput never exceeds `rate`."""

    def __init__(self, rate):
        self._lock = threading.Lock()
        self._rate = rate
        self._next = time.monotonic()
        self.bytes = 0

    def set_rate(self, rate):
        with self._lock:
            self._rate = rate
            self._next = time.monotonic()

    def take(self, n, stopping):
        with self._lock:
            self.bytes += n
            if self._rate is None:
                return
            now = time.monotonic()
            self._next = max(self._next, now) + n / self._rate
            until = self._next
        # Sleep in short steps so `stop` is never held up by a long booking.
        while not stopping.is_set():
            left = until - time.monotonic()
            if left <= 0:
                return
            stopping.wait(min(left, 0.05))


class ThrottlingProxy:
    """Listens on a free loopback port and forwards to `upstream` (host, port); `url` is its
    http:// address. `rate` bytes per second in each direction (None: unlimited)."""

    def __init__(self, upstream, rate=None):
        self._upstream = upstream
        self.up = Pacer(rate)  # client to server
        self.down = Pacer(rate)  # server to client
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets = set()
        self._threads = []
        self.connections = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        host, port = self._listener.getsockname()
        self.url = f"http://{host}:{port}"
        self._accept_thread = self._spawn(self._accept_loop, "proxy-accept")

    def set_rate(self, rate):
        self.up.set_rate(rate)
        self.down.set_rate(rate)

    def _spawn(self, target, name, *args):
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()
        return thread

    def _track(self, *socks):
        with self._lock:
            self._sockets.update(socks)

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self._upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            self._track(client, server)
            self.connections += 1
            done = threading.Semaphore(0)  # released once per finished direction
            self._spawn(self._pump, "proxy-up", client, server, self.up, done)
            self._spawn(self._pump, "proxy-down", server, client, self.down, done)
            self._spawn(self._close_when_done, "proxy-close", client, server, done)

    def _pump(self, source, sink, pacer, done):
        try:
            while not self._stopping.is_set():
                data = source.recv(CHUNK)
                if not data:
                    break
                pacer.take(len(data), self._stopping)
                sink.sendall(data)
            # Pass the half-close on: the peer sees the end of this direction.
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            done.release()

    def _close_when_done(self, client, server, done):
        done.acquire()
        done.acquire()
        for sock in (client, server):
            with self._lock:
                self._sockets.discard(sock)
            sock.close()

    def stop(self):
        """Closes the listener and every connection and joins every thread."""
        self._stopping.set()
        # The accept loop first: after it, no connection or thread is added.
        self._accept_thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout=5)
        alive = [t.name for t in threads if t.is_alive()]
        assert not alive, f"proxy threads still running: {alive}"
