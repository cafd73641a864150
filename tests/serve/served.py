"""The serve tests' one way to run rsr-serve: started on a free loopback port, its URL once it
listens, stopped (SIGTERM) when the block ends.

    with served(build, model, "--parallel", "2") as url: ..."""
import contextlib
import os
import subprocess
import sys
import tempfile
import time


@contextlib.contextmanager
def served(build, model, *args, env=None):
    err = tempfile.NamedTemporaryFile("w+", suffix=".err")
    p = subprocess.Popen([os.path.join(build, "rsr-serve"), model, "--port", "0", *args], stderr=err,
                         stdout=subprocess.DEVNULL, env=env)
    try:
        while "listening on" not in open(err.name).read():
            if p.poll() is not None:
                sys.exit("rsr-serve did not start: " + open(err.name).read())
            time.sleep(0.1)
        yield open(err.name).read().split("listening on ")[1].split("/ ")[0]
    finally:
        p.terminate()
        p.wait()
