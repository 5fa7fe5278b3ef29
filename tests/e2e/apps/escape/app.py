"""An attacker's app: deployed with a project token, it tries every way out of its sandbox it is told of.

POST /attack with a JSON plan {"read": [paths], "write": [paths], "connect": [unix socket paths],
"bind": [ports], "environ_pids": [pids], "marker": "text"} answers what each attempt did. It also starts a
`setsid` child and a double-forked grandchild that sleep with the marker in their command line, so the test
can look for them in the host's /proc after the version stops.
"""

import json
import os
import socket
import subprocess
import sys


def _try(action):
    try:
        return {"ok": True, "value": action()}
    except Exception as exc:  # every failure is an answer here
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _read(path):
    with open(path, "rb") as source:
        return source.read(4096).decode("utf-8", "replace")


def _write(path):
    with open(path, "w") as out:
        out.write("owned by the escape app\n")
    return path


def _connect(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect(path)
        s.sendall(b"GET /config/ HTTP/1.0\r\nHost: x\r\n\r\n")
        return s.recv(200).decode("utf-8", "replace")


def _bind(port):
    held = []
    for host in ("127.0.0.1", "0.0.0.0"):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(8)
        held.append(s)
    _KEEP.extend(held)  # keep listening while the worker lives
    return f"listening on {port}"


_KEEP = []


def _spawn(marker):
    sleeper = [sys.executable, "-c", "import time, sys; time.sleep(600)", marker]
    setsid_child = subprocess.Popen(sleeper, start_new_session=True)
    pid = os.fork()
    if pid == 0:  # first child: fork again and leave, so the grandchild is orphaned
        if os.fork() == 0:
            os.setsid()
            os.execv(sys.executable, sleeper)
        os._exit(0)
    os.waitpid(pid, 0)
    return {"setsid_child": setsid_child.pid}


def _attack(plan):
    marker = plan.get("marker", "escape-marker")
    return {
        "uid": os.getuid(),
        "pid": os.getpid(),
        "environ": dict(os.environ),
        "root_listing": sorted(os.listdir("/")),
        "write": {p: _try(lambda p=p: _write(p)) for p in plan.get("write", [])},
        "read": {p: _try(lambda p=p: _read(p)) for p in plan.get("read", [])},
        "connect": {p: _try(lambda p=p: _connect(p)) for p in plan.get("connect", [])},
        "bind": {str(p): _try(lambda p=p: _bind(p)) for p in plan.get("bind", [])},
        "environ_of": {
            str(pid): _try(lambda pid=pid: _read(f"/proc/{pid}/environ"))
            for pid in plan.get("environ_pids", [])
        },
        "spawn": _try(lambda: _spawn(marker)),
    }


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/attack" and scope["method"] == "POST":
        payload = json.dumps(_attack(json.loads(body or b"{}"))).encode()
    else:
        payload = json.dumps({"ok": True, "pid": os.getpid()}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": payload})
