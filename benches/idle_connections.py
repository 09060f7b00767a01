#!/usr/bin/env python3
"""Memory per idle keep-alive connection: open N connections that each send one request
and then sit idle, and compare the server's RSS before and after.

    python3 benches/idle_connections.py [--connections 5000]
"""

import argparse
import re
import resource
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODY = b'{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}'
REQ = (b"POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: "
       + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=5000)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 1000
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, want), hard), hard))
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "treeserve"], cwd=ROOT, check=True)
    server = subprocess.Popen(
        [str(ROOT / "target/release/treeserve"), "serve", "--registry", "models", "--listen", "127.0.0.1:0",
         "--header-read-timeout", "600s"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        host, port = re.search(r"http://(\S+):(\d+)", server.stdout.readline()).groups()
        # Warm the server (threads, buffers) with a few connections first.
        warm = [socket.create_connection((host, int(port))) for _ in range(16)]
        for s in warm:
            s.sendall(REQ)
            s.recv(4096)
        time.sleep(0.5)
        before = rss_kib(server.pid)
        conns = []
        for _ in range(args.connections):
            s = socket.create_connection((host, int(port)))
            s.sendall(REQ)
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            conns.append(s)
        time.sleep(1)
        after = rss_kib(server.pid)
        per = (after - before) * 1024 / args.connections
        print(f"{args.connections} idle keep-alive connections: RSS {before / 1024:.1f} MiB -> "
              f"{after / 1024:.1f} MiB, {per / 1024:.1f} KiB per connection")
        for s in conns + warm:
            s.close()
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
