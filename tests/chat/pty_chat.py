#!/usr/bin/env python3
"""rsr-run --chat under a pseudo-terminal, as a person uses it (stdlib pty; every wait bounded):
/help lists the commands; a turn gets a reply; Up recalls the last line (libedit's history);
Ctrl-C during a long reply stops it and the prompt comes back; /reset is acknowledged; Ctrl-D
quits with status 0. Usage: pty_chat.py RSR_RUN MODEL.so"""
import os
import pty
import select
import sys
import time

rsr_run, model = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(rsr_run, [rsr_run, model, '--chat', '-n', '6000', '--temp', '0.8', '--seed', '1', '--ignore-eos'])

seen, pos = b'', 0  # the terminal's text, and how much of it the test has consumed


def read_until(token, timeout=30.0):
    """Reads the terminal until token appears after what was already consumed; returns the new text."""
    global seen, pos
    start, deadline = pos, time.monotonic() + timeout
    while token not in seen[start:]:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.exit(f'pty_chat: no {token!r} within {timeout} s; the terminal showed:\n{seen[start:].decode(errors="replace")}')
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b''
            if not chunk:
                sys.exit(f'pty_chat: rsr-run ended early; the terminal showed:\n{seen[start:].decode(errors="replace")}')
            seen += chunk
    pos = seen.index(token, start) + len(token)
    return seen[start:pos]


def prompt():
    read_until(b'> ')
    time.sleep(0.3)  # libedit prints the prompt, then puts the terminal in raw mode (flushing input)


prompt()
os.write(fd, b'/help\r')
assert b'/reset' in read_until(b'Up and Down recall earlier lines')
prompt()

# a turn whose reply is long (-n 6000, --ignore-eos): Ctrl-C stops it and the prompt comes back
os.write(fd, b'Tell me a long story\r')
read_until(b'Tell me a long story')  # the line as the terminal shows it, then the reply streams
time.sleep(0.5)
os.write(fd, b'\x03')
read_until(b'[the reply was stopped]')
prompt()

# Up recalls the last line: the same turn again, shown on the edited line
os.write(fd, b'\x1b[A')
read_until(b'Tell me a long story')
os.write(fd, b'\r')
time.sleep(0.3)
os.write(fd, b'\x03')
read_until(b'[the reply was stopped]')
prompt()

os.write(fd, b'/reset\r')
read_until(b'the conversation is forgotten')
prompt()
os.write(fd, b'\x04')  # Ctrl-D on an empty line: the end of input
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    try:
        if select.select([fd], [], [], 0.1)[0]:
            os.read(fd, 65536)  # drain the terminal so that rsr-run never blocks writing to it
    except OSError:
        pass
else:
    os.kill(pid, 9)
    sys.exit('pty_chat: rsr-run did not quit on Ctrl-D')
code = os.waitstatus_to_exitcode(status)
assert code == 0, f'rsr-run exited {code}'
print('pty chat ok')
