"""Load a server while it shuts down, the way a load balancer would: workers post /score
on keep-alive connections; a balancer thread polls /health/ready every 50 ms and, once it
stops answering 200, stops the workers from starting new requests. Every request that was
started must succeed.

    python3 deploy/drain_check.py http://127.0.0.1:PORT [--workers 8] [--limit 30]

Prints a JSON summary; exits 1 if any request failed or none was sent.
"""

import argparse
import http.client
import json
import sys
import threading
import time
from urllib.parse import urlparse

BODY = b'{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}'

ap = argparse.ArgumentParser()
ap.add_argument("url")
ap.add_argument("--workers", type=int, default=8)
ap.add_argument("--limit", type=float, default=30.0, help="give up after this many seconds")
args = ap.parse_args()
u = urlparse(args.url)
draining = threading.Event()
lock = threading.Lock()
stats = {"requests": 0, "ok": 0, "failures": [], "drain_seen_at": None}
started = time.monotonic()


def balancer():
    while not draining.is_set() and time.monotonic() - started < args.limit:
        try:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=2)
            c.request("GET", "/health/ready")
            status = c.getresponse().status
            c.close()
        except OSError:
            status = None
        if status != 200 and stats["requests"] > 0:
            stats["drain_seen_at"] = round(time.monotonic() - started, 3)
            draining.set()
        time.sleep(0.05)
    draining.set()


def worker():
    conn = None
    while not draining.is_set():
        if conn is None:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            conn.request("POST", "/score", BODY, {"Content-Type": "application/json"})
            with lock:
                stats["requests"] += 1
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200 and b"predicted_species" in body:
                with lock:
                    stats["ok"] += 1
            else:
                with lock:
                    stats["failures"].append(f"status {resp.status}: {body[:100]!r}")
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except OSError as e:
            with lock:
                stats["failures"].append(f"{type(e).__name__}: {e}")
            conn = None


threads = [threading.Thread(target=worker) for _ in range(args.workers)]
threads.append(threading.Thread(target=balancer))
for t in threads:
    t.start()
for t in threads:
    t.join()
stats["failures"] = stats["failures"][:20] + ([f"... {len(stats['failures']) - 20} more"] if len(stats["failures"]) > 20 else [])
print(json.dumps(stats))
sys.exit(1 if stats["failures"] or not stats["ok"] or stats["drain_seen_at"] is None else 0)
