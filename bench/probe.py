"""How fast this machine is right now, for a benchmark report: it is shared with other virtual
machines and its speed moves from hour to hour.

Prints two tab-separated figures, each the median of three tries:
  cpu_ms   a fixed CPU-bound Python loop (lower is faster);
  wake_us  one round trip between two processes over a socket pair, each side woken by the other
           (lower is faster); every request the benchmark sends makes several such wake-ups (wrk,
           server, database).
"""

import os
import socket
import statistics
import time


def cpu_ms():
    started = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i * i
    return (time.perf_counter() - started) * 1000


def wake_us(rounds=20_000):
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        parent.close()
        for _ in range(rounds):
            child.recv(1)
            child.send(b"x")
        os._exit(0)
    child.close()
    started = time.perf_counter()
    for _ in range(rounds):
        parent.send(b"x")
        parent.recv(1)
    elapsed = time.perf_counter() - started
    os.waitpid(pid, 0)
    parent.close()
    return elapsed / rounds * 1e6


if __name__ == "__main__":
    cpu = statistics.median(cpu_ms() for _ in range(3))
    wake = statistics.median(wake_us() for _ in range(3))
    print(f"{cpu:.0f}\t{wake:.1f}")
