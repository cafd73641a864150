"""tools_qwen35.py MODE SERVE_DIR: Qwen3.5's tool calls (qwen3_coder: <function=...> blocks whose
parameter values are raw text) through rsr-serve's /v1/chat/completions (serve/tools-qwen35.test).

Modes: required, named (sampled replies under tool_choice, each call checked by hand against its
function's schema), auto (a reply forced by a grammar: its calls, their types, the text before
them, and the same streamed), history (an assistant turn's calls rendered back as the template
writes them)."""
import json
import sys
import urllib.request

# the strings are enums: a random model would write a free one until max_tokens
CITIES = ["Paris", "San José", "Oslo"]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "enum": CITIES}, "unit": {"enum": ["c", "f"]},
                                         "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "unit"]}}},
    {"type": "function", "function": {"name": "store", "parameters": {
        "type": "object", "properties": {"key": {"type": "string", "enum": ["42", "k", "a\nb"]}, "on": {"type": "boolean"},
                                         "meta": {"type": "object", "properties": {"n": {"type": "integer"}},
                                                  "required": ["n"], "additionalProperties": False}},
        "required": ["key", "on", "meta"]}}},
]
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def post(url, path, body, stream=False):
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        text = r.read().decode()
    if not stream:
        return json.loads(text)
    return [json.loads(l[6:]) for l in text.splitlines() if l.startswith("data: {")]


def holds(call):
    spec = SCHEMAS.get(call["function"]["name"])
    args = json.loads(call["function"]["arguments"])
    if spec is None or not call["id"] or set(args) - set(spec["properties"]) or set(spec["required"]) - set(args):
        return False
    types = {"string": str, "boolean": bool, "object": dict}
    for k, v in args.items():
        p = spec["properties"][k]
        if "enum" in p and v not in p["enum"]:
            return False
        if p.get("type") == "integer" and not (type(v) is int and p["minimum"] <= v <= p["maximum"]):
            return False
        if p.get("type") in types and type(v) is not types[p["type"]]:
            return False
        if p.get("type") == "object" and (set(v) != {"n"} or type(v["n"]) is not int):
            return False
    return True


def calls_ok(url, n, choice, name=None):
    good = 0
    for seed in range(1, n + 1):
        r = post(url, "/v1/chat/completions", {"messages": MESSAGES, "tools": TOOLS, "tool_choice": choice,
                                               "temperature": 1, "seed": seed, "max_tokens": 200,
                                               "parallel_tool_calls": False})
        c = r["choices"][0]
        calls = c["message"].get("tool_calls") or []
        ok = c["finish_reason"] == "tool_calls" and calls and all(holds(k) for k in calls)
        ok = ok and (name is None or all(k["function"]["name"] == name for k in calls))
        if not ok:
            print("not a valid call:", json.dumps(c), file=sys.stderr)
        good += bool(ok)
    return good


def streamed(url, body):
    text, calls, finish = "", {}, None
    for e in post(url, "/v1/chat/completions", dict(body, stream=True), stream=True):
        d = e["choices"][0]["delta"]
        text += d.get("content") or ""
        for t in d.get("tool_calls") or []:
            k = calls.setdefault(t["index"], {"name": "", "arguments": ""})
            k["name"] += t.get("function", {}).get("name", "")
            k["arguments"] += t.get("function", {}).get("arguments", "")
        finish = e["choices"][0]["finish_reason"] or finish
    return text, [calls[i] for i in sorted(calls)], finish


def main():
    mode, url = sys.argv[1], open(sys.argv[2] + "/url").read().strip()
    if mode == "required":
        print(f"{calls_ok(url, 8, 'required')} of 8 replies call tools that hold their schemas")
    elif mode == "named":
        choice = {"type": "function", "function": {"name": "store"}}
        print(f"{calls_ok(url, 4, choice, 'store')} of 4 replies call store")
    elif mode == "auto":
        reply = ("Let me see.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nSan José\n</parameter>\n"
                 "<parameter=unit>\nc\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>\n"
                 "<tool_call>\n<function=store>\n<parameter=key>\n42\n</parameter>\n<parameter=on>\ntrue\n"
                 "</parameter>\n<parameter=meta>\n{\"n\": 5}\n</parameter>\n</function>\n</tool_call>")
        body = {"messages": MESSAGES, "tools": TOOLS, "grammar": "root ::= " + json.dumps(reply),
                "max_tokens": 300, "temperature": 0}
        c = post(url, "/v1/chat/completions", body)["choices"][0]
        for k in c["message"]["tool_calls"]:
            print("call", k["function"]["name"], k["function"]["arguments"])
        print("finish_reason", c["finish_reason"], "content", repr(c["message"]["content"]))
        text, calls, finish = streamed(url, body)
        want = [{"name": k["function"]["name"], "arguments": k["function"]["arguments"]}
                for k in c["message"]["tool_calls"]]
        assert calls == want and finish == "tool_calls" and text == c["message"]["content"], (calls, text, finish)
        print("streamed: text", repr(text), "and the same", len(calls), "calls")
    elif mode == "history":
        call = {"id": "c1", "type": "function",
                "function": {"name": "store", "arguments": json.dumps({"key": "k", "on": False, "meta": {"n": 1}})}}
        msgs = MESSAGES + [{"role": "assistant", "content": None, "tool_calls": [call]},
                           {"role": "tool", "tool_call_id": "c1", "content": "done"}]
        print(post(url, "/apply-template", {"messages": msgs, "tools": TOOLS})["prompt"])


main()
