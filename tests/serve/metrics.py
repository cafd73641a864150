#!/usr/bin/env python3
"""/metrics as llm-d's endpoint picker and the Gateway API Inference Extension read it (the model
server protocol: vLLM's names), parsed by Prometheus' own text parser (python3-prometheus-client).

One rsr-serve (2 slots) on MODEL.so: while a long streamed request runs, the gauges show it
(num_requests_running 1, kv_cache_usage_perc in (0, 1]), and with three at once two run and one
waits (num_requests_waiting 1); after REQUESTS requests, every name the
protocol and its scorers use is there with its type and model_name, the time-to-first-token
histogram counts every request that got a token, the end-to-end one every request that ended
whole, the prefix cache's hits are at most its queries and count the second turn's reuse, and
vllm:cache_config_info names the block size and the blocks of every cache.
Exits 77 (ctest: skipped) without prometheus_client. Usage: metrics.py BUILD_DIR MODEL.so"""
import json
import sys
import threading
import time
import urllib.request

from served import served

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("metrics: skipped: no prometheus_client (Debian's python3-prometheus-client)")
    sys.exit(77)

REQUESTS = 6
NAMES = {  # name: type, as vLLM exports them
    "vllm:num_requests_waiting": "gauge", "vllm:num_requests_running": "gauge", "vllm:kv_cache_usage_perc": "gauge",
    "vllm:cache_config_info": "gauge", "vllm:prefix_cache_queries": "counter", "vllm:prefix_cache_hits": "counter",
    "vllm:time_to_first_token_seconds": "histogram", "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram", "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter"}
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def main():
    build, model = sys.argv[1], sys.argv[2]
    with served(build, model, "--parallel", "2", "--ctx", "512", "--model-id", "kjv") as url:
        run(url)
    sys.exit(1 if failures else 0)


def families(url):
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams, name, suffix=""):
    return [s.value for s in fams[name].samples if s.name == name + suffix][0]


def post(url, body):
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return urllib.request.urlopen(req)


def run(url):
    idle = families(url)
    check(value(idle, "vllm:num_requests_running") == 0, "idle: no request running")
    # the gauges under load: a long stream, read while it runs
    req = urllib.request.Request(url + "/v1/completions", json.dumps(
        {"prompt": "1:1 In the beginning", "max_tokens": 500, "temperature": 0, "stream": True}).encode(),
        {"Content-Type": "application/json"})
    stream = urllib.request.urlopen(req)  # the text repeats: no end token before max_tokens
    stream.readline()
    busy = families(url)
    kv = value(busy, "vllm:kv_cache_usage_perc")
    check(value(busy, "vllm:num_requests_running") == 1 and 0 < kv <= 1,
          f"under load: 1 running, kv_cache_usage_perc {kv} in (0, 1]")
    stream.read()
    # three at once on two slots: two run, one waits
    streams, readers = [], []
    for k in range(3):
        streams.append(urllib.request.Request(url + "/v1/completions", json.dumps(
            {"prompt": "1:1 In the beginning", "max_tokens": 400, "temperature": 0, "stream": True}).encode(),
            {"Content-Type": "application/json"}))
        readers.append(threading.Thread(target=lambda r: urllib.request.urlopen(r).read(), args=(streams[-1],)))
        readers[-1].start()
    seen, until = (0, 0), time.time() + 10
    while time.time() < until and seen != (2, 1):
        f = families(url)
        seen = (value(f, "vllm:num_requests_running"), value(f, "vllm:num_requests_waiting"))
    check(seen == (2, 1), f"three requests on two slots: (running, waiting) {seen}, want (2, 1)")
    for t in readers:
        t.join()
    served = 4
    messages = [{"role": "user", "content": "Who begat Enos?"}]
    for i in range(REQUESTS - 1):  # a conversation: each turn reuses the last one's prompt
        r = json.load(post(url, {"messages": messages, "max_tokens": 8, "temperature": 0}))
        messages += [r["choices"][0]["message"], {"role": "user", "content": f"And then? ({i})"}]
        served += 1
    fams = families(url)
    for name, kind in NAMES.items():
        f = fams.get(name)
        labelled = f is not None and all(s.labels.get("model_name") == "kjv" for s in f.samples)
        check(f is not None and f.type == kind and labelled, f"{name}: {kind} with model_name")
    kv = value(fams, "vllm:kv_cache_usage_perc")
    check(0 <= kv <= 1 and value(fams, "vllm:num_requests_running") == 0, f"after: kv_cache_usage_perc {kv} in [0, 1]")
    ttft = value(fams, "vllm:time_to_first_token_seconds", "_count")
    e2e = value(fams, "vllm:e2e_request_latency_seconds", "_count")
    itl = value(fams, "vllm:inter_token_latency_seconds", "_count")
    gen = value(fams, "vllm:generation_tokens", "_total")
    check(ttft == served and e2e == served, f"time to first token counted {ttft}, end to end {e2e}: {served} served")
    check(itl == gen - served, f"inter-token latencies {itl}: the {gen} tokens less each request's first")
    buckets = [s for s in fams["vllm:time_to_first_token_seconds"].samples if s.name.endswith("_bucket")]
    check(buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == ttft and
          all(a.value <= b.value for a, b in zip(buckets, buckets[1:])), "buckets cumulative up to +Inf = count")
    hits, queries = value(fams, "vllm:prefix_cache_hits", "_total"), value(fams, "vllm:prefix_cache_queries", "_total")
    check(0 < hits <= queries, f"prefix cache: {hits} hits of {queries} tokens queried (the turns reuse)")
    info = [s for s in fams["vllm:cache_config_info"].samples][0]
    check(info.value == 1 and info.labels["block_size"] == "16" and int(info.labels["num_gpu_blocks"]) == 2 * 512 // 16,
          f"cache_config_info {info.labels}: block_size 16, 2 caches of 512 positions")


if __name__ == "__main__":
    main()
