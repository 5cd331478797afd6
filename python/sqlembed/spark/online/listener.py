"""Where online executor tasks connect: a multiprocessing.connection Listener.

The Listener frames messages and authenticates each connection with an HMAC challenge over the
shared key before ``accept`` returns, so the key never crosses the network and an unauthenticated
peer never reaches the code below. After that the task says who it is (JSON) and is admitted or
told why not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

from sqlembed.spark.online.codec import no_delay
from sqlembed.spark.online.pool import Worker, WorkerPool

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0


class DispatchListener:
    def __init__(self, pool: WorkerPool, authkey: bytes, admit: Callable[[dict[str, Any]], str | None],
                 on_hello: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.pool = pool
        self.admit = admit
        self.on_hello = on_hello
        self._authkey = authkey
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.address: tuple[str, int] | None = None
        self._wake: tuple[str, int] | None = None

    def start(self, advertised_host: str, bind_host: str, port: int) -> None:
        """Listen on ``bind_host:port`` and tell executors ``advertised_host`` (a name they resolve)."""
        self._listener = Listener((bind_host, port), family="AF_INET", backlog=64, authkey=self._authkey)
        bound_port = int(self._listener.address[1])
        self.address = (advertised_host, bound_port)
        self._wake = (bind_host or "127.0.0.1", bound_port)
        self._thread = threading.Thread(target=self._accept_loop, name="sqlembed-dispatch-accept", daemon=True)
        self._thread.start()
        log.info("online dispatch listening on %s:%d", *self.address)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn = self._listener.accept()
            except AuthenticationError:
                log.warning("refused an online connection that failed the key challenge")
                continue
            except (OSError, EOFError):
                if self._stopping.is_set():
                    return
                continue
            no_delay(conn)
            threading.Thread(target=self._hello, args=(conn,), name="sqlembed-dispatch-hello", daemon=True).start()

    def _hello(self, conn: Connection) -> None:
        try:
            if not conn.poll(HELLO_TIMEOUT_S):
                raise TimeoutError("no hello")
            hello = json.loads(conn.recv_bytes(64 * 1024))
            if not isinstance(hello, dict):
                raise ValueError("hello is not an object")
            if self.on_hello is not None:
                self.on_hello(hello)
            reason = self.admit(hello)
            worker = None if reason is not None else Worker(conn, str(hello.get("executor")), hello.get("gpu"),
                                                            str(hello.get("backend")))
            if worker is not None and not self.pool.add(worker):
                reason = "duplicate"
            if reason is not None:
                conn.send_bytes(json.dumps({"ok": False, "reason": reason}).encode())
                conn.close()
                if reason != "duplicate":
                    log.warning("refused online executor task %s: %s", hello.get("executor"), reason)
                return
            conn.send_bytes(json.dumps({"ok": True}).encode())
            log.info("online executor task %s connected (gpu %s, %s)", worker.executor if worker else "?",
                     hello.get("gpu"), hello.get("backend"))
        except (OSError, EOFError, ValueError) as exc:
            log.warning("online handshake failed: %s", exc)
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self._stopping.set()
        if self._listener is not None and self._wake is not None:
            stop_listener(self._listener, self._thread, self._wake, self._authkey)


def stop_listener(listener: Listener, accept_thread: threading.Thread | None, wake: tuple[str, int],
                  authkey: bytes) -> None:
    """Stop an accept loop that checks a stop flag after each accept.

    Closing the listening socket does not wake a thread blocked in accept() on Linux; a connection
    of our own does. The loop may also have stopped on its own in the meantime, so the waking
    connection runs in a daemon thread, and closing the listener afterwards resets it if nobody
    accepted it.
    """

    def wake_up() -> None:
        with contextlib.suppress(OSError, EOFError, AuthenticationError):
            Client(wake, family="AF_INET", authkey=authkey).close()

    waker = threading.Thread(target=wake_up, name="sqlembed-listener-wake", daemon=True)
    waker.start()
    if accept_thread is not None:
        accept_thread.join(timeout=5)
    with contextlib.suppress(OSError):
        listener.close()
    waker.join(timeout=2)
