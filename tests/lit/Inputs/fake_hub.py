"""fake_hub.py: a stand-in for the Hugging Face Hub's HTTP API, for testing rsrc hf:ORG/NAME.

    fake_hub.py start STATE ROOT [--gated ORG/NAME --token T] [--cut BYTES]
    fake_hub.py stop STATE

Serves the repositories under ROOT (ROOT/ORG/NAME/FILE) on 127.0.0.1 at a free port, in the
background; STATE/url holds the endpoint (HF_ENDPOINT), STATE/log one line per request
("METHOD PATH RANGE"). The commit of a repository is the sha1 of its files' names and bytes.
    GET  /api/models/ORG/NAME/revision/REV  {"sha": COMMIT, "siblings": [{"rfilename": F}, ...]}
    HEAD /ORG/NAME/resolve/REV/FILE         .safetensors and .gguf as LFS files do: 302 to
                                            /cdn/SHA256 with X-Linked-Etag and X-Linked-Size;
                                            others 200 with ETag and Content-Length
    GET  the same, following to /cdn/SHA256 (Range honoured)
REV is "main" or the commit. A gated repository answers 401 without "Authorization: Bearer T".
--cut BYTES: the first GET of a /cdn/ file sends BYTES bytes of it and drops the connection.

A malicious mirror: while STATE/mode holds one of HOSTILE's names, the server answers as that
says (read at every request, so one server plays each part in turn), about ROOT/org/x/model.gguf:
the API answers for any revision, and a path it does not know as resolve/COMMIT/model.gguf
does, so that a client that squashes "../" in a URL still gets a file.
"""
import hashlib
import http.server
import json
import os
import signal
import sys
import threading
import time


def repo_files(root, repo):
    base = os.path.join(root, repo)
    out = []
    for d, _, names in os.walk(base):
        for n in names:
            out.append(os.path.relpath(os.path.join(d, n), base))
    return sorted(out)


def commit_of(root, repo):
    h = hashlib.sha1()
    for f in repo_files(root, repo):
        h.update(f.encode())
        with open(os.path.join(root, repo, f), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def sha256_of(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def lfs(name):
    return name.endswith(".safetensors") or name.endswith(".gguf")


HOSTILE = {
    "etag-escape": "the HEAD's X-Linked-Etag is ../../../x/victim.txt (blobs/ETAG is TMP/x/victim.txt)",
    "name-escape": "the listing's one file is ../../../../x/victim.gguf (snapshots/COMMIT/FILE is TMP/x/...)",
    "name-absolute": "the listing's one file is /x/victim.gguf",
    "bad-commit": "the listing's sha is ..",
    "stall-api": "the API answer's headers, then nothing",
    "drip-api": "the API answer a byte every 0.3 s",
    "endless-api": "an API answer without end (512 MiB, no Content-Length)",
    "stall-body": "a file's first 1000 bytes, then nothing",
    "long-body": "a file 64 MiB longer than its HEAD said",
    "ignore-range": "a file whole, with 200, whatever the Range asked",
    "redirect-loop": "a file's GET redirected to /loop/1, /loop/1 to /loop/2, and on",
}
CHUNK = 1 << 16


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self):
        with open(self.server.state + "/log", "a") as f:
            f.write(f"{self.command} {self.path} {self.headers.get('Range', '-')}\n")

    def reply(self, status, body=b"", headers=None, head=False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def allowed(self, repo):
        if repo != self.server.gated:
            return True
        return self.headers.get("Authorization") == f"Bearer {self.server.token}"

    def mode(self):
        try:
            with open(self.server.state + "/mode") as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def stream(self, status, headers, chunks):
        """status and headers, then each chunk (bytes, or a number: seconds to wait), until the client leaves"""
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.close_connection = True
        try:
            for c in chunks:
                if isinstance(c, bytes):
                    self.wfile.write(c)
                    self.wfile.flush()
                else:
                    time.sleep(c)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def hostile(self, mode, head):
        """Answers as HOSTILE[mode] says; False: left to the honest Hub."""
        parts, repo = self.path.split("/"), "org/x"
        sha = commit_of(self.server.root, repo)
        path = os.path.join(self.server.root, repo, "model.gguf")
        with open(path, "rb") as fh:
            body = fh.read()
        names = {"name-escape": "../../../../x/victim.gguf", "name-absolute": "/x/victim.gguf"}
        if self.path.startswith("/api/models/"):
            if mode in names or mode == "bad-commit":
                listing = {"sha": ".." if mode == "bad-commit" else sha,
                           "siblings": [{"rfilename": names.get(mode, "model.gguf")}]}
                self.reply(200, json.dumps(listing).encode(), {"Content-Type": "application/json"}, head)
            elif mode == "stall-api":
                self.stream(200, {"Content-Length": "1000"}, [60])
            elif mode == "drip-api":
                self.stream(200, {"Content-Length": "100000"}, [b" ", 0.3] * 200)
            elif mode == "endless-api":
                item = b'{"rfilename": "a"}, ' * (CHUNK // 20)
                start = b'{"sha": "%s", "siblings": [' % sha.encode()
                self.stream(200, {"Content-Type": "application/json"}, [start] + [item] * ((512 << 20) // CHUNK))
            elif len(parts) >= 7 and parts[6] not in ("main", sha):  # any revision, refs/../.. too
                listing = {"sha": sha, "siblings": [{"rfilename": f} for f in repo_files(self.server.root, repo)]}
                self.reply(200, json.dumps(listing).encode(), {"Content-Type": "application/json"}, head)
            else:
                return False
        elif self.path.startswith("/loop/"):
            self.reply(302, b"", {"Location": f"/loop/{int(parts[2]) + 1}"}, head)
        elif self.path.startswith("/cdn/"):
            if mode == "stall-body":
                self.stream(200, {"Content-Length": str(len(body))}, [body[:1000], 60])
            elif mode == "long-body":
                extra = 64 << 20
                self.stream(200, {"Content-Length": str(len(body) + extra)}, [body] + [bytes(CHUNK)] * (extra // CHUNK))
            elif mode == "ignore-range":
                self.reply(200, body, head=head)
            else:
                return False
        elif mode == "redirect-loop" and not head:
            self.reply(302, b"", {"Location": "/loop/1"})
        elif parts[3:6] == ["resolve", sha, "model.gguf"] and mode != "etag-escape":
            return False
        else:  # model.gguf's HEAD, whatever the path (a client may squash ../ in it)
            digest = sha256_of(path)
            etag = "../../../x/victim.txt" if mode == "etag-escape" else digest
            self.reply(302, b"", {"Location": f"/cdn/{digest}", "X-Linked-Etag": f'"{etag}"',
                                  "X-Linked-Size": str(len(body))}, head)
        return True

    def route(self, head):
        self.record()
        mode = self.mode()
        if mode and self.hostile(mode, head):
            return
        root, parts = self.server.root, self.path.split("/")
        if self.path.startswith("/api/models/") and len(parts) >= 7 and parts[5] == "revision":
            repo = parts[3] + "/" + parts[4]
            if not os.path.isdir(os.path.join(root, repo)):
                return self.reply(404, b'{"error": "Repository not found"}')
            if not self.allowed(repo):
                return self.reply(401, b'{"error": "Access to model is restricted"}')
            sha = commit_of(root, repo)
            if parts[6] not in ("main", sha):
                return self.reply(404, b'{"error": "Revision not found"}')
            body = json.dumps({"id": repo, "sha": sha, "siblings": [{"rfilename": f} for f in repo_files(root, repo)]})
            return self.reply(200, body.encode(), {"Content-Type": "application/json"}, head)
        if self.path.startswith("/cdn/"):
            digest = parts[2]
            for d, _, names in os.walk(root):
                for n in names:
                    p = os.path.join(d, n)
                    if lfs(n) and sha256_of(p) == digest:
                        return self.send_blob(p, head)
            return self.reply(404)
        if len(parts) >= 6 and parts[3] == "resolve":
            repo, rev, name = parts[1] + "/" + parts[2], parts[4], "/".join(parts[5:])
            path = os.path.join(root, repo, name)
            if not self.allowed(repo):
                return self.reply(401, head=head)
            if rev not in ("main", commit_of(root, repo)) or not os.path.isfile(path):
                return self.reply(404, head=head)
            if lfs(name):
                digest = sha256_of(path)
                return self.reply(302, b"", {"Location": f"/cdn/{digest}", "X-Linked-Etag": f'"{digest}"',
                                             "X-Linked-Size": str(os.path.getsize(path)),
                                             "X-Repo-Commit": commit_of(root, repo)}, head)
            with open(path, "rb") as fh:
                body = fh.read()
            return self.reply(200, body, {"ETag": f'"{hashlib.sha1(body).hexdigest()}"'}, head)
        return self.reply(404, head=head)

    def send_blob(self, path, head):
        with open(path, "rb") as fh:
            body = fh.read()
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start, status = int(rng[6:].split("-")[0]), 206
        part = body[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(part)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if head:
            return
        if self.server.cut and not self.server.cut_done:
            self.server.cut_done = True
            self.wfile.write(part[: self.server.cut])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(part)

    def do_GET(self):
        self.route(False)

    def do_HEAD(self):
        self.route(True)


def start(state, root, args):
    os.makedirs(state, exist_ok=True)
    if os.path.exists(state + "/url"):
        os.remove(state + "/url")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.state, srv.root = os.path.abspath(state), os.path.abspath(root)
    srv.gated = args[args.index("--gated") + 1] if "--gated" in args else None
    srv.token = args[args.index("--token") + 1] if "--token" in args else None
    srv.cut = int(args[args.index("--cut") + 1]) if "--cut" in args else 0
    srv.cut_done = False
    if os.fork():
        for _ in range(100):
            if os.path.exists(state + "/url"):
                return
            time.sleep(0.05)
        sys.exit("fake_hub.py: the server did not start")
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # lit waits for the test's output to close
        os.dup2(devnull, fd)
    with open(state + "/pid", "w") as f:
        f.write(str(os.getpid()))
    with open(state + "/url.tmp", "w") as f:
        f.write(f"http://127.0.0.1:{srv.server_address[1]}")
    os.rename(state + "/url.tmp", state + "/url")
    threading.Timer(300, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()  # never outlives a test
    srv.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "start":
        start(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        with open(sys.argv[2] + "/pid") as f:
            os.kill(int(f.read()), signal.SIGTERM)
        os.remove(sys.argv[2] + "/url")
