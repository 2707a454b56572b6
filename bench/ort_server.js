// ort_server.js - times ONNX Runtime (onnxruntime-node) inference for bench/run.py.
//
// A long-lived process, so that sessions are created once and the rounds of run.py can
// interleave ONNX Runtime with nncc and PyTorch.  Protocol: one JSON request per stdin line,
//   {"model": "x.onnx", "threads": 1, "spin": false, "runs": N, "warmup": W,
//    "inputs": [{"name": "image", "dtype": "float32"|"int64", "shape": [..], "file": "x.bin"}]}
// and one JSON reply per line on stdout: {"median_us": M, "min_us": m} or {"error": "..."}.
// Sessions are cached per (model, threads, spin), input tensors per file (raw little-endian
// data).  spin false sets session.intra_op.allow_spinning=0: idle pool threads sleep.
// Run from a directory where `npm install onnxruntime-node` was done (NODE_PATH is set by run.py).
'use strict';
const fs = require('fs');
const readline = require('readline');
const ort = require('onnxruntime-node');

const sessions = new Map();
const tensors = new Map();

async function session(model, threads, spin) {
  const key = model + '#' + threads + '#' + spin;
  if (!sessions.has(key)) {
    sessions.set(key, await ort.InferenceSession.create(model, {
      intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      extra: {session: {intra_op: {allow_spinning: spin ? '1' : '0'}}}}));
  }
  return sessions.get(key);
}

function tensor(inp) {
  if (!tensors.has(inp.file)) {
    const buf = fs.readFileSync(inp.file);
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    const data = inp.dtype === 'int64' ? new BigInt64Array(ab) : new Float32Array(ab);
    tensors.set(inp.file, new ort.Tensor(inp.dtype, data, inp.shape));
  }
  return tensors.get(inp.file);
}

async function handle(req) {
  const s = await session(req.model, req.threads, !!req.spin);
  const feeds = {};
  for (const inp of req.inputs) feeds[inp.name] = tensor(inp);
  for (let i = 0; i < req.warmup; i++) await s.run(feeds);
  const t = [];
  for (let i = 0; i < req.runs; i++) {
    const t0 = process.hrtime.bigint();
    await s.run(feeds);
    t.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  t.sort((a, b) => a - b);
  const n = t.length;
  const median = n % 2 ? t[(n - 1) / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
  return {median_us: median, min_us: t[0]};
}

const rl = readline.createInterface({input: process.stdin});
let queue = Promise.resolve();
rl.on('line', (line) => {
  queue = queue.then(async () => {
    let reply;
    try {
      reply = await handle(JSON.parse(line));
    } catch (e) {
      reply = {error: String(e && e.message ? e.message : e)};
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  });
});
rl.on('close', () => { queue.then(() => process.exit(0)); });
