#!/usr/bin/env python3
"""The 2015 helper, re-created from SEED.md's description to measure its stack next to
odseed-agent's: raw TCP, one recv(1024) of JSON; {"command": "start"} runs deluged and
deluge-web, {"command": "stop"} stops them. No reply, no authentication. Left out: the original's
busy main loop (it costs CPU, not memory) and its `pkill deluge` (it would kill anyone's deluge)."""
import json
import os
import socket
import subprocess

config = os.environ["DELUGE_CONFIG"]
port = int(os.environ.get("PORT", "5050"))
procs = []
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(1)
while True:
    conn, _ = srv.accept()
    data = conn.recv(1024)
    conn.close()
    try:
        command = json.loads(data)["command"]
    except (ValueError, KeyError, TypeError):
        continue
    if command == "start" and not procs:
        procs = [subprocess.Popen(["deluged", "-d", "-c", config]), subprocess.Popen(["deluge-web", "-d", "-c", config])]
    elif command == "stop":
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        procs = []
