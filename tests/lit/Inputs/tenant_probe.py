#!/usr/bin/env python3
"""tenant_probe.py DIR: what one tenant of the rsr-serve that Inputs/serve.sh started in DIR can learn
of another's prompt through the prefix caches. Tenant A (key sk-a, or cache_salt "a" on a server
without keys) sends a secret; tenant B guesses its next token ten ways, each guess a new prompt,
and reads cached_tokens and the prompt tokens the server evaluated for it (/metrics: the work,
hence the time to its first token). B's later guesses reuse B's own first guess's prefix; no guess
may stand out. Printed for FileCheck: what B saw by guess (to compare with a server where A sent
nothing), whether the guesses after the first saw alike, and what A's own follow-up found cached.

    tenant_probe.py DIR keys|salt [--no-secret]
"""
import json
import os
import re
import sys
import urllib.request

server_dir, mode = sys.argv[1], sys.argv[2]
secret = "--no-secret" not in sys.argv
url = open(os.path.join(server_dir, "url")).read().strip()


def who(tenant):
    return ({"Authorization": "Bearer sk-" + tenant}, {}) if mode == "keys" else ({}, {"cache_salt": tenant})


def complete(tenant, prompt, more=None):
    headers, extra = who(tenant)
    body = dict({"prompt": prompt, "max_tokens": 1, "temperature": 0}, **extra, **(more or {}))
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                                 headers=dict(headers, **{"Content-Type": "application/json"}))
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def evaluated():
    headers, _ = who("a")
    with urllib.request.urlopen(urllib.request.Request(url + "/metrics", headers=headers), timeout=60) as r:
        return int(re.search(r"^rsr_prompt_tokens_total (\d+)$", r.read().decode(), re.M).group(1))


base = "The vault code is 7 4 1 9"
if secret:
    complete("a", base)
cached, work = [], []
for guess in range(10):
    prompt = base[: base.index("7")] + str(guess) + " and so"  # the secret's prefix, a guessed digit, more
    before = evaluated()
    r = complete("b", prompt)
    cached.append(r["usage"]["prompt_tokens_details"]["cached_tokens"])
    work.append(evaluated() - before)
print("B cached_tokens by guess:", cached)
print("B prompt tokens evaluated by guess:", work)
print("B's guesses alike:", len(set(cached[1:])) == 1 and len(set(work[1:])) == 1)
if secret:
    r = complete("a", base + " and")
    print("A's own follow-up cached:", r["usage"]["prompt_tokens_details"]["cached_tokens"] > 0)
    # the greedy text is the same with the cache and without it
    again = complete("a", base + " and", {"max_tokens": 12})
    fresh = complete("a", base + " and", {"max_tokens": 12, "cache_prompt": False})
    print("A's text with and without the cache alike:", again["choices"][0]["text"] == fresh["choices"][0]["text"],
          again["usage"]["prompt_tokens_details"]["cached_tokens"] > 0,
          fresh["usage"]["prompt_tokens_details"]["cached_tokens"] == 0)
