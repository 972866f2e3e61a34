// The keyed-update workload of bench_core, run on Yjs and Automerge so that
// Engram's figures can be compared in the same run.
//
// A writer document holds KEYS keys with PAYLOAD-byte values; it then updates
// random keys in batches of BATCH (one transaction / change per batch). A
// replica that already holds the initial state applies the batches; we time
// only the applies. Prints one JSON object.
//
//   node keyed_updates.mjs [--keys 100000] [--batches 200] [--automerge-batches 10]
import * as Y from 'yjs';
import * as Automerge from '@automerge/automerge';

const args = process.argv.slice(2);
function arg(name, def) {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
}
const KEYS = arg('--keys', 100000);
const BATCH = arg('--batch', 64);
const PAYLOAD = arg('--payload', 256);
const BATCHES = arg('--batches', 200);
const AM_BATCHES = arg('--automerge-batches', 10);
const AM_KEYS = arg('--automerge-keys', KEYS);

// Deterministic PRNG (mulberry32) so both peers see the same key sequence.
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function payload(i) {
  const s = 'v' + i + '-';
  return s.repeat(Math.ceil(PAYLOAD / s.length)).slice(0, PAYLOAD);
}
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function benchYjs() {
  const writer = new Y.Doc();
  const wmap = writer.getMap('m');
  writer.transact(() => {
    for (let k = 0; k < KEYS; ++k) wmap.set('key' + k, payload(k));
  });
  const reader = new Y.Doc();
  Y.applyUpdate(reader, Y.encodeStateAsUpdate(writer));
  const updates = [];
  writer.on('update', (u) => updates.push(u));
  const r = rng(42);
  let n = 0;
  for (let b = 0; b < BATCHES; ++b) {
    writer.transact(() => {
      for (let i = 0; i < BATCH; ++i)
        wmap.set('key' + Math.floor(r() * KEYS), payload(++n));
    });
  }
  const samples = [];
  let bytes = 0;
  const chunk = Math.max(1, Math.floor(updates.length / 10));
  for (let i = 0; i < updates.length; i += chunk) {
    const part = updates.slice(i, i + chunk);
    const t0 = process.hrtime.bigint();
    for (const u of part) Y.applyUpdate(reader, u);
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    samples.push((part.length * BATCH) / dt);
  }
  for (const u of updates) bytes += u.byteLength;
  return {
    updates_per_s: median(samples),
    bytes_per_update: bytes / (updates.length * BATCH),
    wire_ratio: bytes / (updates.length * BATCH * PAYLOAD),
  };
}

function benchAutomerge() {
  let writer = Automerge.from({});
  writer = Automerge.change(writer, (d) => {
    for (let k = 0; k < AM_KEYS; ++k) d['key' + k] = new Automerge.ImmutableString(payload(k));
  });
  let reader = Automerge.load(Automerge.save(writer));
  const changes = [];
  const r = rng(42);
  let n = 0;
  for (let b = 0; b < AM_BATCHES; ++b) {
    const next = Automerge.change(writer, (d) => {
      for (let i = 0; i < BATCH; ++i)
        d['key' + Math.floor(r() * AM_KEYS)] = new Automerge.ImmutableString(payload(++n));
    });
    changes.push(Automerge.getChanges(writer, next));
    writer = next;
  }
  const samples = [];
  let bytes = 0;
  for (const c of changes) {
    const t0 = process.hrtime.bigint();
    [reader] = Automerge.applyChanges(reader, c);
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    samples.push(BATCH / dt);
    for (const x of c) bytes += x.byteLength;
  }
  return {
    updates_per_s: median(samples),
    bytes_per_update: bytes / (changes.length * BATCH),
    wire_ratio: bytes / (changes.length * BATCH * PAYLOAD),
  };
}

const yjs = benchYjs();
const automerge = benchAutomerge();
console.log(JSON.stringify({
  workload: { keys: KEYS, batch: BATCH, payload: PAYLOAD },
  yjs, automerge,
}));
