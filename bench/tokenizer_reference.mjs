// The reference implementation's load time and encode speed, for bench/tokenizer.sh.
// Usage: node tokenizer_reference.mjs NPM_DIR TOKENIZER.json TOKENIZER_CONFIG.json TEXT_FILE [REPEAT]
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [dir, tokPath, configPath, textPath, repeatArg] = process.argv.slice(2);
const { Tokenizer } = createRequire(path.join(path.resolve(dir), "package.json"))("@huggingface/tokenizers");
const repeat = Number(repeatArg ?? 20);
const text = fs.readFileSync(textPath, "utf8");
const t0 = performance.now();
const tok = new Tokenizer(JSON.parse(fs.readFileSync(tokPath, "utf8")), JSON.parse(fs.readFileSync(configPath, "utf8")));
const t1 = performance.now();
let tokens = 0;
for (let r = 0; r < repeat; r++) tokens += tok.encode(text, { add_special_tokens: false }).ids.length;
const t2 = performance.now();
const bytes = Buffer.byteLength(text, "utf8") * repeat;
console.log(`load ${(t1 - t0).toFixed(1)} ms`);
console.log(`encode ${(bytes / ((t2 - t1) / 1e3) / 1e6).toFixed(2)} MB/s ${(tokens / ((t2 - t1) / 1e3)).toFixed(0)} tokens/s`);
