"""json_validate.py SCHEMA.json REPLY.json...: each reply (an OpenAI chat completion) whose
finish_reason is "stop" holds JSON of the schema (the subset rsr-serve serves: type, properties,
required, additionalProperties, items, minItems, maxItems, minLength, maxLength, enum, const),
checked apart from rsr-serve's recognizer. A schema of null stands for json_object (any object).
Prints one line per reply: its finish_reason and "valid", or fails naming what is wrong."""
import json
import sys

TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def is_type(v, t):
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, TYPES[t])


def check(v, s, where="$"):
    if s is None or s is True:
        return
    if "enum" in s:
        assert any(v == e and type(v) is type(e) for e in s["enum"]), f"{where}: {v!r} not in {s['enum']}"
    if "const" in s:
        assert v == s["const"], f"{where}: {v!r} is not {s['const']!r}"
    if "type" in s:
        ts = s["type"] if isinstance(s["type"], list) else [s["type"]]
        assert any(is_type(v, t) for t in ts), f"{where}: {v!r} is not of {ts}"
    if isinstance(v, dict) and "properties" in s:
        for k in v:
            assert k in s["properties"], f"{where}: key {k!r} not in properties"
            check(v[k], s["properties"][k], f"{where}.{k}")
        for k in s.get("required", []):
            assert k in v, f"{where}: required {k!r} missing"
    if isinstance(v, list):
        assert len(v) >= s.get("minItems", 0) and len(v) <= s.get("maxItems", 1 << 30), f"{where}: {len(v)} items"
        for i, x in enumerate(v):
            check(x, s.get("items"), f"{where}[{i}]")
    if isinstance(v, str):
        assert s.get("minLength", 0) <= len(v) <= s.get("maxLength", 1 << 30), f"{where}: {len(v)} characters"


schema = json.load(open(sys.argv[1]))
for path in sys.argv[2:]:
    c = json.load(open(path))["choices"][0]
    text = c["message"]["content"]
    if c["finish_reason"] != "stop":
        print(c["finish_reason"])
        continue
    v = json.loads(text)
    if schema is None:
        assert isinstance(v, dict), f"{path}: not an object: {text}"
    check(v, schema)
    print("stop valid")
