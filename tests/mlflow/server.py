"""Runs one `mlflow server` for a test process, and stops it when that process goes away.

Usage: python server.py DIR

Starts `mlflow server` on a free loopback port with a sqlite backend and proxied artifacts
under DIR, waits until /health answers, then prints `READY http://127.0.0.1:PORT` (or
`FAILED reason` and exits 1). It then waits for its standard input to close, which happens
when the test process exits, however it exits, stops the server's whole process group and
removes DIR.

A new database is migrated by `mlflow server` itself (its Alembic migrations: about 11 s of
a 28 s start here); the first server to migrate one keeps a copy beside the venv (made
again when the venv's pinned MLflow changes), and later servers start from that copy.
"""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

READY_WITHIN = 120.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


# A database MLflow migrated, kept in the venv's directory: a venv holds one MLflow version.
TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(sys.executable))),
                        "treeserve-migrated-mlflow.db")


def keep_template(db):
    """Copies the database the server just migrated (sqlite's backup: a consistent copy;
    then a rename, so a server never starts from half a copy)."""
    tmp = f"{TEMPLATE}.{os.getpid()}"
    src, dst = sqlite3.connect(db), sqlite3.connect(tmp)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    os.replace(tmp, TEMPLATE)


def main():
    root = sys.argv[1]
    os.makedirs(os.path.join(root, "artifacts"), exist_ok=True)
    db = os.path.join(root, "mlflow.db")
    # A restart on the same directory keeps its database; a new one starts migrated.
    migrating = not os.path.exists(db)
    if migrating and os.path.exists(TEMPLATE):
        shutil.copyfile(TEMPLATE, db)
        migrating = False
    port = free_port()
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    log = open(os.path.join(root, "server.log"), "wb")
    proc = subprocess.Popen(
        [
            mlflow, "server",
            "--backend-store-uri", "sqlite:///" + db,
            "--artifacts-destination", os.path.join(root, "artifacts"),
            "--serve-artifacts",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", "1",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_WITHIN
    while True:
        if proc.poll() is not None:
            print(f"FAILED mlflow server exited with {proc.returncode}; see {root}/server.log", flush=True)
            sys.exit(1)
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop(proc)
            print(f"FAILED not ready within {READY_WITHIN} s; see {root}/server.log", flush=True)
            sys.exit(1)
        time.sleep(0.1)
    if migrating and not os.path.exists(TEMPLATE):
        keep_template(db)
    print(f"READY {url}", flush=True)
    try:
        sys.stdin.buffer.read()  # until the test process closes the pipe
    finally:
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
