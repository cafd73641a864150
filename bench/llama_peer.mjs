// One round of upstream llama.cpp (npm node-llama-cpp, CPU) on a GGUF file: prefill of the given
// token ids, then greedy decode of N tokens, each timed. Prints {"prefill_tok_s", "decode_tok_s"}.
// Usage: node llama_peer.mjs MODEL.gguf ID,ID,... N THREADS
import {getLlama} from "node-llama-cpp";

const [path, idList, n, threads] = process.argv.slice(2);
const ids = idList.split(",").map(Number);
const llama = await getLlama({gpu: false, logLevel: "error"});
const model = await llama.loadModel({modelPath: path});
const context = await model.createContext({contextSize: ids.length + Number(n) + 8, batchSize: 512, threads: Number(threads)});
const seq = context.getSequence();
let t0 = performance.now();
await seq.evaluateWithoutGeneratingNewTokens(ids);
const prefill = ids.length / ((performance.now() - t0) / 1000);
let count = 0;
t0 = performance.now();
for await (const token of seq.evaluate([ids[ids.length - 1]], {temperature: 0})) {
    if (++count >= Number(n)) break;
}
const decode = count / ((performance.now() - t0) / 1000);
process.stdout.write(JSON.stringify({prefill_tok_s: prefill, decode_tok_s: decode}) + "\n");
await context.dispose();
await model.dispose();
