"""tools_probe.py MODE SERVE_DIR: tool calls through rsr-serve's /v1/chat/completions (serve/tools.test).

Each reply's calls are checked by hand against their function's schema (the test's own small
checker, apart from rsr-serve's grammar): the name among the tools, the arguments a JSON object
with every required key, no other, each value of its type, enum and range."""
import json
import sys
import urllib.request

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 16},
                                                     "unit": {"enum": ["c", "f"]}},
                    "required": ["city", "unit"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "add", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99},
                                         "b": {"type": "integer", "minimum": -5, "maximum": 5}},
        "required": ["a", "b"], "additionalProperties": False}}},
]
MESSAGES = [{"role": "user", "content": "What is the weather in Paris, and what is 2 + 3?"}]


def post(url, body, stream=False):
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        text = r.read().decode()
    if not stream:
        return json.loads(text)
    return [json.loads(l[6:]) for l in text.splitlines() if l.startswith("data: {")]


def holds(call):
    f = call["function"]
    spec = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}.get(f["name"])
    if spec is None or call["type"] != "function" or not call["id"]:
        return False
    args = json.loads(f["arguments"])
    if not isinstance(args, dict) or set(args) - set(spec["properties"]) or set(spec["required"]) - set(args):
        return False
    for k, v in args.items():
        p = spec["properties"][k]
        if "enum" in p and v not in p["enum"]:
            return False
        if p.get("type") == "string" and not (isinstance(v, str) and len(v) <= p["maxLength"]):
            return False
        if p.get("type") == "integer" and not (isinstance(v, int) and not isinstance(v, bool)
                                               and p["minimum"] <= v <= p["maximum"]):
            return False
    return True


def calls_ok(url, n, choice, expect_name=None):
    good = 0
    for seed in range(1, n + 1):
        # one call a reply: a random model would write calls until max_tokens
        r = post(url, {"messages": MESSAGES, "tools": TOOLS, "tool_choice": choice, "temperature": 1,
                       "seed": seed, "max_tokens": 200, "parallel_tool_calls": False})
        c = r["choices"][0]
        calls = c["message"].get("tool_calls") or []
        ok = c["finish_reason"] == "tool_calls" and calls and all(holds(k) for k in calls)
        ok = ok and (expect_name is None or all(k["function"]["name"] == expect_name for k in calls))
        if not ok:
            print("not a valid call:", json.dumps(c), file=sys.stderr)
        good += bool(ok)
    return good


def streamed(url, body):
    events = post(url, dict(body, stream=True), stream=True)
    thoughts = text = ""
    calls, finish = {}, None
    for e in events:
        d = e["choices"][0]["delta"]
        thoughts += d.get("reasoning_content") or ""
        text += d.get("content") or ""
        for t in d.get("tool_calls") or []:
            k = calls.setdefault(t["index"], {"id": None, "name": "", "arguments": ""})
            k["id"] = t.get("id", k["id"])
            k["name"] += t.get("function", {}).get("name", "")
            k["arguments"] += t.get("function", {}).get("arguments", "")
        finish = e["choices"][0]["finish_reason"] or finish
    return thoughts, text, [calls[i] for i in sorted(calls)], finish


def main():
    mode, url = sys.argv[1], open(sys.argv[2] + "/url").read().strip()
    if mode in ("required", "generic"):
        n = 8 if mode == "required" else 4
        print(f"{calls_ok(url, n, 'required')} of {n} replies call tools that hold their schemas")
    elif mode == "named":
        choice = {"type": "function", "function": {"name": "get_weather"}}
        print(f"{calls_ok(url, 4, choice, 'get_weather')} of 4 replies call get_weather")
    elif mode == "stream":
        body = {"messages": MESSAGES, "tools": TOOLS, "tool_choice": "required", "temperature": 1, "seed": 3,
                "max_tokens": 200}
        whole = post(url, body)["choices"][0]
        _, text, calls, finish = streamed(url, body)
        want = [{"name": k["function"]["name"], "arguments": k["function"]["arguments"]}
                for k in whole["message"]["tool_calls"]]
        assert all(k.pop("id").startswith("call_") for k in calls)
        assert calls == want and finish == "tool_calls" and text == "", (calls, want, finish, text)
        print("streamed calls equal the whole reply's")
    elif mode == "auto":
        reply = '<think>I should add.</think>\n<tool_call>\n{"name":"add","arguments":{"a":2,"b":3}}\n</tool_call>'
        grammar = "root ::= " + json.dumps(reply)
        body = {"messages": MESSAGES, "tools": TOOLS, "grammar": grammar, "max_tokens": 300, "temperature": 0}
        c = post(url, body)["choices"][0]
        print("tool_calls", json.dumps(c["message"]["tool_calls"]))
        print("finish_reason", c["finish_reason"])
        print("content", c["message"]["content"])
        print("reasoning_content", repr(c["message"].get("reasoning_content")))
        c = post(url, dict(body, reasoning_format="none"))["choices"][0]
        print("none:", repr(c["message"]["content"]), "and", len(c["message"]["tool_calls"]), "call")
        thoughts, text, calls, finish = streamed(url, body)
        assert finish == "tool_calls" and calls[0]["arguments"] == '{"a":2,"b":3}', (calls, finish)
        print(f"streamed: thoughts {thoughts!r} text {text!r} calls {len(calls)}")
        body = {"messages": MESSAGES, "grammar": 'root ::= "<think>plan</think>The answer."', "max_tokens": 100}
        m = post(url, body)["choices"][0]["message"]
        print(f"thoughts only: reasoning_content {m.get('reasoning_content')!r} content {m['content']!r}")


main()
