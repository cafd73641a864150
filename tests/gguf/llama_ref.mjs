// The next-token probabilities upstream llama.cpp (the prebuilt libraries of the npm package
// node-llama-cpp) gives for a GGUF file after each prefix of a list of token ids, on the CPU.
// Usage: node llama_ref.mjs MODEL.gguf ID,ID,... > probs.json
// Output: {"probs": [[p_0, ..., p_vocab-1] after 1 token, after 2 tokens, ...]}, at temperature 1.
import {getLlama} from "node-llama-cpp";

const [path, idList] = process.argv.slice(2);
const ids = idList.split(",").map(Number);
const llama = await getLlama({gpu: false, logLevel: "error"});
const model = await llama.loadModel({modelPath: path});
const context = await model.createContext({contextSize: 256, batchSize: 64, threads: 2});
const seq = context.getSequence();
const out = await seq.controlledEvaluate(ids.map((t) => [t, {generateNext: {probabilities: true, options: {temperature: 1, topK: 1 << 30, topP: 1, minP: 0}}}]));
const n = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
const probs = out.map((o) => {
    const p = new Array(n).fill(0);
    for (const [tok, pr] of o.next.probabilities) p[tok] = pr;
    return p;
});
process.stdout.write(JSON.stringify({probs}));
await context.dispose();
await model.dispose();
