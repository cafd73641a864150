// Upstream llama.cpp (npm node-llama-cpp, CPU) on a GGUF file, for bench/peers.sh.
//
//   node llama_peer.mjs time MODEL.gguf ID,ID,... N THREADS
//     one round: prefill of the given token ids (after one untimed warm-up prefill), greedy decode of N tokens after them, then the
//     sequence cleared and N tokens decoded from one token (an empty context); prints
//     {"prefill_tok_s", "decode_after_tok_s", "decode_empty_tok_s"}
//   node llama_peer.mjs tokens MODEL.gguf ID,ID,... N THREADS
//     the N greedy token ids after the prompt, comma-separated (to check agreement with rsrc)
import {getLlama} from "node-llama-cpp";

const [mode, path, idList, nArg, threads] = process.argv.slice(2);
if (mode !== "time" && mode !== "tokens") {
    process.stderr.write("usage: node llama_peer.mjs time|tokens MODEL.gguf ID,ID,... N THREADS\n");
    process.exit(2);
}
const ids = idList.split(",").map(Number);
const n = Number(nArg);
const llama = await getLlama({gpu: false, logLevel: "error"});
const model = await llama.loadModel({modelPath: path});
const context = await model.createContext({contextSize: ids.length + 2 * n + 8, batchSize: 512, threads: Number(threads)});

/* Greedy decode of n tokens after evaluating `tokens`; returns the ids and the rate of all but the
 * first (whose time includes evaluating `tokens`). */
async function decode(seq, tokens) {
    const out = [];
    let t0 = 0;
    for await (const token of seq.evaluate(tokens, {temperature: 0})) {
        out.push(token);
        if (out.length === 1) t0 = performance.now();
        if (out.length >= n + 1) break;
    }
    return {out: out.slice(0, n), rate: (out.length - 1) / ((performance.now() - t0) / 1000)};
}

const seq = context.getSequence();
if (mode === "tokens") {
    process.stdout.write((await decode(seq, ids)).out.join(",") + "\n");
} else {
    /* a warm-up evaluation first, as llama-bench makes one: the weights' pages mapped, the threads
     * started; then the timed prefill from an empty context */
    await seq.evaluateWithoutGeneratingNewTokens(ids);
    await seq.clearHistory();
    const t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(ids);
    const prefill = ids.length / ((performance.now() - t0) / 1000);
    /* decode after the prompt: the prompt's last token again starts it (its time is left out) */
    const after = await decode(seq, [ids[ids.length - 1]]);
    await seq.clearHistory();
    const empty = await decode(seq, [ids[0]]);
    process.stdout.write(
        JSON.stringify({prefill_tok_s: prefill, decode_after_tok_s: after.rate, decode_empty_tok_s: empty.rate}) + "\n");
}
await context.dispose();
await model.dispose();
