#!/usr/bin/env python3
"""Seed corpora for the fuzzers, made from the test models: every tiny checkpoint format that
rsr-mkmodel writes (shrunk to a few KB), mktiny.py's model and each of its broken variants,
the target specs, shard indexes over fuzz_index's fixed shards, the Hub's answers (honest and
hostile), and fixed byte strings for the runtime fuzzers. Usage: make_seeds.py BUILD_DIR OUT_DIR"""
import os, random, shutil, struct, subprocess, sys, tempfile

build, out = sys.argv[1], sys.argv[2]
src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
mktiny = os.path.join(src, 'tests', 'lit', 'Inputs', 'mktiny.py')
shutil.rmtree(out, ignore_errors=True)
dirs = {name: os.path.join(out, name) for name in
        ['safetensors', 'model', 'index', 'target_spec', 'artifact', 'runtime_api', 'tokenizer',
         'sentencepiece', 'serve_request', 'serve_engine', 'gguf', 'jinja', 'gbnf', 'json', 'schema', 'hub']}
for d in dirs.values():
    os.makedirs(d)

def put(kind, name, data):
    with open(os.path.join(dirs[kind], name), 'wb') as f:
        f.write(data)

def read(path):
    with open(path, 'rb') as f:
        return f.read()

def model_seed(name, model_dir, shard='model.safetensors'):
    config, weights = read(os.path.join(model_dir, 'config.json')), read(os.path.join(model_dir, shard))
    put('safetensors', name, weights)
    put('model', name, struct.pack('<H', len(config)) + config + weights)

with tempfile.TemporaryDirectory() as tmp:
    small = ['--hidden', '8', '--intermediate', '8', '--layers', '1', '--heads', '2', '--kv-heads', '1',
             '--vocab', '16', '--max-pos', '16']
    for fmt in ['bitnet-packed', 'bitnet-bf16', 'llama-packed', 'falcon-e', '1bitllm']:
        d = os.path.join(tmp, fmt)
        subprocess.run([os.path.join(build, 'rsr-mkmodel'), '--format', fmt, '--out', d] + small,
                       check=True, stderr=subprocess.DEVNULL)
        model_seed(fmt, d)
    # GGUF: each ternary encoding, at shapes its blocks allow (TQ: 256 columns; cut by -max_len)
    for fmt, shape in [('gguf-i2s', ['--hidden', '16', '--intermediate', '16', '--heads', '2', '--vocab', '16']),
                       ('gguf-tq2', ['--hidden', '256', '--intermediate', '256', '--heads', '2', '--vocab', '16']),
                       ('gguf-tq1', ['--hidden', '256', '--intermediate', '256', '--heads', '2', '--vocab', '16']),
                       ('gguf-tq2', ['--hidden', '256', '--intermediate', '256', '--heads', '2', '--vocab', '16',
                                     '--gguf-arch', 'llama', '--gguf-embed', 'q6_k'])]:
        d = os.path.join(tmp, fmt)
        subprocess.run([os.path.join(build, 'rsr-mkmodel'), '--format', fmt, '--out', d, '--layers', '1',
                        '--kv-heads', '1', '--max-pos', '16', '--no-tokenizer'] + shape,
                       check=True, stderr=subprocess.DEVNULL)
        put('gguf', fmt + '-' + shape[-1], read(os.path.join(d, 'model.gguf')))
    # PrismML's PQ2_0 and PTQ1_0 with the Hadamard fold (tests/gguf/prism_fold.py writes them)
    d = os.path.join(tmp, 'qwen35')
    subprocess.run([os.path.join(build, 'rsr-mkmodel'), '--format', 'gguf-q2', '--gguf-arch', 'qwen35', '--out', d,
                    '--hidden', '128', '--intermediate', '128', '--layers', '1', '--heads', '2', '--kv-heads', '1',
                    '--head-dim', '64', '--vocab', '16', '--max-pos', '16', '--no-tokenizer', '--ssm-heads', '1,2',
                    '--ssm-head', '64'], check=True, stderr=subprocess.DEVNULL)
    fold = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'gguf', 'prism_fold.py')
    for typ in ['pq2_0', 'ptq1_0']:
        out = os.path.join(tmp, typ + '.gguf')
        subprocess.run([sys.executable, fold, 'write', os.path.join(d, 'model.gguf'), out, '--type', typ, '--block',
                        '64'], check=True)
        put('gguf', 'prism-' + typ, read(out))
    d = os.path.join(tmp, 'shards')
    subprocess.run([os.path.join(build, 'rsr-mkmodel'), '--format', 'bitnet-packed', '--out', d, '--shards', '2']
                   + small, check=True, stderr=subprocess.DEVNULL)
    for f in sorted(os.listdir(d)):
        if f.endswith('.safetensors'):
            put('safetensors', 'shard-' + f, read(os.path.join(d, f)))
    breaks = ['none', 'bad-act', 'bad-config-json', 'bad-json', 'code3', 'header-past-eof', 'heads-not-divide',
              'missing-tensor', 'nan-scale', 'offset-out-of-range', 'overlap', 'shape-mismatch', 'size-mismatch',
              'truncated', 'truncated-data', 'unknown-arch', 'unknown-quant', 'unsupported-dtype',
              'vocab-too-large', 'wrong-dtype', 'zero-scale']
    for b in breaks:
        d = os.path.join(tmp, 'tiny-' + b)
        subprocess.run([sys.executable, mktiny, d, '--break', b], check=True)
        model_seed('tiny-' + b, d)

# tokenizer: the byte-level BPE tokenizer.json rsr-mkmodel writes, with texts to encode
with tempfile.TemporaryDirectory() as tmp:
    d = os.path.join(tmp, 'tok')
    subprocess.run([os.path.join(build, 'rsr-mkmodel'), '--format', 'bitnet-packed', '--out', d] + small[:-4]
                   + ['--vocab', '300', '--max-pos', '16'], check=True, stderr=subprocess.DEVNULL)
    tj = read(os.path.join(d, 'tokenizer.json'))
    for i, text in enumerate([b'', b'The capital of France is Paris.', b'\xff\xfe broken \xc3 utf-8',
                              b'   spaces\n\n\ttabs', '\u65e5\u672c\u8a9e \U0001f600'.encode()]):
        put('tokenizer', 'text%d' % i, struct.pack('<H', len(tj)) + tj + text)
    put('tokenizer', 'bad-json', struct.pack('<H', 9) + b'{"model":' + b'abc')

# sentencepiece: mkspm.py's tokenizer.model, whole (with and without byte pieces) and broken each
# way the lit tests pin, with texts to encode
mkspm = os.path.join(src, 'tests', 'lit', 'Inputs', 'mkspm.py')
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'tokenizer.model')
    for b in ['none', 'byte-fallback', 'truncated', 'wire-type', 'score-wire', 'absurd-length', 'long-varint', 'unigram',
              'charsmap', 'byte-piece', 'unk-id', 'duplicate', 'empty-piece', 'unknown-field']:
        subprocess.run([sys.executable, mkspm, path, '--break', b], check=True)
        spm = read(path)
        for i, text in enumerate([b'ab abc cab', b'  a\xc3\xa9 <s>d</s> ', b'\xff\xfe broken']):
            put('sentencepiece', '%s-%d' % (b, i), struct.pack('<H', len(spm)) + spm + text)

for f in sorted(os.listdir(os.path.join(src, 'specs'))):
    if f.endswith('.yaml'):
        put('target_spec', f, read(os.path.join(src, 'specs', f)))
put('target_spec', 'small.yaml', b'name: x\nkind: cpu\ncpu: x86-64-v3\nfeatures: [avx2, -fma]\n'
    b'strategies: [rsr]\ncache: {l1d: 48KiB, l2: 2MiB, line: 64}\nicache_budget: 32KiB\nthreads: 4\n')

# fuzz_index's shards: model-00001-of-00002 (a.x, a.y), model-00002-of-00002 (b.z), other (a.x, c.w).
one, two = 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'
put('index', 'valid.json',
    ('{"metadata": {"total_size": 10}, "weight_map": {"a.x": "%s", "a.y": "%s", "b.z": "%s"}}'
     % (one, one, two)).encode())
put('index', 'wrong-file.json', ('{"weight_map": {"a.x": "%s", "a.y": "%s", "b.z": "%s"}}' % (two, one, two)).encode())
put('index', 'duplicate.json', ('{"weight_map": {"a.x": "other.safetensors", "c.w": "other.safetensors", '
                                 '"a.y": "%s"}}' % one).encode())
put('index', 'escape.json', b'{"weight_map": {"a.x": "../model.safetensors"}}')

rng = random.Random(1)
for i in range(8):
    put('artifact', 'random-%d' % i, bytes(rng.randrange(256) for _ in range(64 + 64 * i)))
    put('runtime_api', 'random-%d' % i, bytes(rng.randrange(256) for _ in range(128 + 96 * i)))

# rsr-serve's request bodies: the first byte picks embeddings (bit 1), else chat (odd) or
# completions (even)
serve = [
    (2, b'{"input": ["a text", [1, 2, 3]], "dimensions": 4, "model": "m"}'),
    (2, b'{"input": [[5, 6], [999]], "encoding_format": "base64", "user": "u"}'),
    (0, b'{"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "seed": 3}'),
    (0, b'{"prompt": "hi", "stop": ["\\n", "END"], "stream": true, "model": "m", "n": 1}'),
    (1, b'{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \\u00e9\\ud83d\\ude00"}], "max_completion_tokens": 8, "top_k": 40}'),
    (1, b'{"messages": [{"role": "user", "content": "x"}], "logprobs": false, "tools": [], "best_of": 1}'),
    (0, b'\xe2\x82\xac\xf0\x9f\x98'),
]
for i, (kind, body) in enumerate(serve):
    put('serve_request', 'seed%d' % i, bytes([kind]) + body)

# the scheduler's programs (fuzz_serve_engine.c: pairs of op, argument): submissions over the
# queue's room, cancellations at each phase, reads, a failing step, turns, a drain midway
def engine_program(seed):
    r = random.Random(seed)
    return bytes(b for _ in range(r.randrange(8, 120)) for b in (r.choice([0, 0, 1, 2, 3, 4, 4, 5]), r.randrange(256)))
put('serve_engine', 'stall', bytes([0, 200, 4, 3, 0, 10, 0, 10, 1, 0, 4, 0, 4, 9]))
for i in range(6):
    put('serve_engine', 'seed%d' % i, engine_program(i))

# chat templates (the first byte: the conversation), from this project's test templates
with open(os.path.join(src, 'tests', 'tokenizer', 'chat_templates.json')) as f:
    import json
    for i, t in enumerate(t for t in json.load(f)['templates'] if 'template' in t):
        put('jinja', 'chat%d' % i, bytes([4 | 128]) + t['template'].encode())
with open(os.path.join(src, 'tests', 'tokenizer', 'jinja_cases.json')) as f:
    for i, t in enumerate(t for t in json.load(f)['templates'] if 'template' in t):
        src_ = t['template'] if isinstance(t['template'], str) else ''.join(t['template'])
        put('jinja', 'case%d' % i, bytes([i % 5 | (i & 1) << 7]) + src_.encode())
put('jinja', 'ns', b'\x84{%- set ns = namespace(n=0) %}{% for m in messages[::-1] if m.role != "system" %}'
    b'{% set ns.n = ns.n + 1 %}{{ loop.index ~ m.content | trim | tojson }}{% endfor %}{{ ns.n }}')

# grammars, then a NUL and a reply
gbnf = [
    (b'root ::= "yes" | "no"', b'yes'),
    (b'root ::= expr\nexpr ::= term ("+" term)*\nterm ::= [0-9]+ | "(" expr ")"', b'(1+23)+4'),
    (b'root ::= obj\nobj ::= "{" (pair ("," pair)*)? "}"\npair ::= str ":" val\nval ::= str | [0-9]+ | obj\n'
     b'str ::= "\\"" [^"\\\\]* "\\""', b'{"a":1,"b":{"c":"d"}}'),
    (b'root ::= [\xce\xb1-\xcf\x89]{2,4} "." # greek\n', '\u03b1\u03b2.'.encode()),
    (b'root ::= ("a" | "b"){0,3} .', b'ab\xe2\x82\xac'),
]
for i, (g, r) in enumerate(gbnf):
    put('gbnf', 'seed%d' % i, g + b'\0' + r)

# replies to structured output's JSON recognizer: compact ones it takes (at its depth and number
# limits), ones it refuses (white space, a trailing comma, a leading zero, an escaped surrogate, one
# level or one character too many), and prefixes
json_replies = [
    b'{"a":[1,-2.5e+3,{"b":null}],"c":"\\u00e9\\n\\"","d":true,"e":false}', b'{}', b'[]', b'"x"', b'-0.5E-7', b'null',
    '{"\u65e5\u672c":"\U0001f600","k":"\\/\\b\\f\\r\\t"}'.encode(), b'{"a":{"b":{"c":[[[{"d":[]}]]]}}}',
    b'[' * 16 + b'1' + b']' * 16, b'[' * 17 + b']' * 17, b'[' * 17 + b'1' + b']' * 17,
    b'1' * 24, b'-' + b'1' * 23, b'1.' + b'0' * 21 + b'e', b'1' * 25,
    b'{\n  "a": [1, 2],\n  "b": {"c": "d"}\n}\n', b'{"a":1,}', b'{"a":01}', b'{"a":"\\ud83d\\ude00"}',
    b'{"a":"\xed\xa0\x80"}', b'{"a":"\xc3"}', b'{"a":tru', b'{"a":[1,{"b":"\\u00',
]
for i, r in enumerate(json_replies):
    put('json', 'reply%d' % i, r)

# response_format schemas, then a NUL and a reply: serve_json.c's subset, then what only
# serve_schema.c's GBNF serves (anyOf, $ref, allOf, pattern, format, bounds, tuples)
schemas = [
    ({'type': 'object', 'properties': {'name': {'type': 'string', 'maxLength': 8}, 'age': {'type': 'integer'},
      'tags': {'type': 'array', 'items': {'enum': ['a', 'b', 3, None]}, 'minItems': 1, 'maxItems': 2}},
      'required': ['name', 'age'], 'additionalProperties': False}, b'{"name":"Ann","age":30,"tags":["a",3]}'),
    ({'type': 'array', 'items': {'type': ['number', 'boolean', 'null']}, 'maxItems': 3}, b'[1.5,true,null]'),
    ({'type': 'string', 'minLength': 2, 'maxLength': 3}, '"a\u00e9"'.encode()),
    ({'const': {'k': [1, 'x']}, 'title': 'T'}, b'{"k":[1,"x"]}'),
    ({'anyOf': [{'type': 'string', 'maxLength': 3}, {'type': 'null'}]}, b'"abc"'),
    ({'type': 'integer', 'minimum': -5, 'exclusiveMaximum': 120, 'multipleOf': 7}, b'112'),
    ({'type': 'number', 'minimum': 0.5, 'maximum': 10}, b'3.25'),
    ({'$defs': {'node': {'type': 'object', 'properties': {'v': {'type': 'integer'}, 'next': {'anyOf': [
        {'$ref': '#/$defs/node'}, {'type': 'null'}]}}, 'required': ['v', 'next']}}, '$ref': '#/$defs/node'},
     b'{"v":1,"next":{"v":2,"next":null}}'),
    ({'allOf': [{'type': 'object', 'properties': {'a': {'type': 'integer', 'maximum': 9}}, 'required': ['a']},
                {'properties': {'b': {'type': 'string'}}, 'required': ['b']}]}, b'{"a":5,"b":"x"}'),
    ({'type': 'string', 'pattern': '^[a-z]{2,4}-\\d+(?:x|y)?$'}, b'"ab-12x"'),
    ({'type': 'string', 'format': 'date-time'}, b'"2024-02-29T13:05:59.123+01:00"'),
    ({'type': 'array', 'prefixItems': [{'type': 'boolean'}, {'const': 'x'}], 'items': {'type': 'number'}},
     b'[true,"x",1.5,2]'),
    ({'type': 'object', 'properties': {'a': {'type': 'integer'}}, 'additionalProperties': {'type': 'string'}},
     b'{"a":1,"x":"yz"}'),
    ({'type': 'object', 'propertyNames': {'pattern': '^[a-z]+$'}, 'additionalProperties': {'type': 'boolean'}},
     b'{"ab":true}'),
    (True, b'[{"a":"\\u00e9"},-0.5e+3,false]'),
]
for i, (sch, r) in enumerate(schemas):
    put('schema', 'seed%d' % i, json.dumps(sch, separators=(',', ':')).encode() + b'\0' + r)

# the Hub's answers (fuzz_hub.c: the first byte odd, header lines; even, a revision's listing),
# as huggingface.co gives them and as the hostile mirror of tests/lit/cli/hub-hostile.test does
sha, digest = 'a' * 40, '77196407e59c3fdebfeba820d7a73babbbc2996d6fe49563ec94bf34d830e87e'
heads = [
    'HTTP/1.1 302 Found\r\nLocation: /cdn/%s\r\nX-Linked-Etag: "%s"\r\nX-Linked-Size: 366144\r\n'
    'Content-Length: 0\r\n\r\n' % (digest, digest),
    'HTTP/2 200\r\netag: W/"%s"\r\ncontent-length: 1234\r\nx-repo-commit: %s\r\n\r\n' % (sha, sha),
    'HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\nHTTP/1.1 206 Partial Content\r\n'
    'Content-Range: bytes 20000-366143/366144\r\nContent-Length: 346144\r\n\r\n',
    'HTTP/1.1 302 Found\r\nX-Linked-Etag: "../../../x/victim.txt"\r\nX-Linked-Size: -1\r\n\r\n',
    'HTTP/1.1 200 OK\r\nETag: "' + 'e' * 200 + '"\r\nContent-Length: 99999999999999999999\r\n\r\n',
    'main\nrefs/pr/1\nv1.0+x\n../../x\norg/model-GGUF\norg--x/y\nsub/dir/model.gguf\n/abs\na//b\n',
]
for i, h in enumerate(heads):
    put('hub', 'head%d' % i, b'\x01' + h.encode())
listings = [
    {'id': 'org/x', 'sha': sha, 'siblings': [{'rfilename': f} for f in
     ['.gitattributes', 'README.md', 'config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']]},
    {'sha': sha, 'siblings': [{'rfilename': 'a.gguf'}, {'rfilename': 'q4/b.gguf'}, {'rfilename': 'c.txt'}]},
    {'sha': sha, 'siblings': [{'rfilename': 'model-00001-of-00002.safetensors'}, {'rfilename': 'config.json'},
                              {'rfilename': 'model-00002-of-00002.safetensors'},
                              {'rfilename': 'model.safetensors.index.json'}]},
    {'sha': sha, 'siblings': [{'rfilename': '../../../../x/victim.gguf'}]},
    {'sha': sha, 'siblings': [{'rfilename': '/x/victim.gguf'}, {'rfilename': 'b.gguf'}]},
    {'sha': '..', 'siblings': [{'rfilename': 'model.gguf'}]},
    {'sha': sha.upper(), 'siblings': []},
    {'sha': sha, 'siblings': [{'rfilename': 'a\\b.gguf'}, {'rfilename': 'c\x1b[2J.gguf'}]},
]
for i, l in enumerate(listings):
    put('hub', 'listing%d' % i, b'\x00' + json.dumps(l).encode())
