// The embedding upstream llama.cpp (the prebuilt libraries of the npm package node-llama-cpp)
// gives a list of token ids on the CPU: the final-normed hidden states pooled as the GGUF's
// ARCH.pooling_type says (none: the last token's), not normalised.
// Usage: node llama_embed.mjs MODEL.gguf ID,ID,... > embedding.json   ({"embedding": [...]})
import {getLlama} from "node-llama-cpp";

const [path, idList] = process.argv.slice(2);
const ids = idList.split(",").map(Number);
const llama = await getLlama({gpu: false, logLevel: "error"});
const model = await llama.loadModel({modelPath: path});
const context = await model.createEmbeddingContext({contextSize: 256, batchSize: 256, threads: 2});
const embedding = await context.getEmbeddingFor(ids);
process.stdout.write(JSON.stringify({embedding: Array.from(embedding.vector)}));
await context.dispose();
await model.dispose();
