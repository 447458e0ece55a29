// Trains an embedding on tensors made here, mines nearest-positive triplets and evaluates
// retrieval, through nearpos's typed API. Each of the 4 classes is made of 2 separate
// modes (its sub-classes): nearest-positive sampling keeps them apart while it pulls each
// class together, which the fine-label recall below measures.
//
//   npx nearpos setup        # once: the Python side, in .nearpos/venv
//   npx tsx main.ts [steps]  # or: npx tsc && node build/main.js [steps]
import { Runtime, StartError, Tensor } from "nearpos";
import type { TensorSet } from "nearpos";

const CLASSES = 4;
const MODES = 2; // sub-classes per class
const DIM = 16;
const steps = Number(process.argv[2] ?? 200);

/** A deterministic generator (mulberry32), and normal draws from it (Box-Muller). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const uniform = rng(7);
const normal = (): number => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());

// One centre per (class, mode); samples are centre + noise, so the modes overlap a little.
const centres = Array.from({ length: CLASSES * MODES }, () => Array.from({ length: DIM }, () => 1.2 * normal()));

function samples(perMode: number): TensorSet {
  const n = CLASSES * MODES * perMode;
  const x = new Float32Array(n * DIM);
  const labels = new BigInt64Array(n);
  const fine = new BigInt64Array(n);
  let i = 0;
  for (let c = 0; c < CLASSES * MODES; c++) {
    for (let k = 0; k < perMode; k++, i++) {
      const centre = centres[c] as number[];
      for (let d = 0; d < DIM; d++) x[i * DIM + d] = (centre[d] as number) + 1.0 * normal();
      labels[i] = BigInt(Math.floor(c / MODES));
      fine[i] = BigInt(c);
    }
  }
  return { x: Tensor.from(x, [n, DIM]), labels: Tensor.from(labels, [n]), fine_labels: Tensor.from(fine, [n]) };
}

const data = { kind: "tensors" as const, train: samples(40), test: samples(20) };

async function main(): Promise<void> {
  await using rt = await Runtime.start();
  console.log(`runtime ${rt.hello.runtime_version}: Python ${rt.hello.python}, torch ${rt.hello.torch}`);

  // Train: P x K batches of the coarse labels, the nearest positive of each anchor.
  const run = rt.train({
    data,
    model: { kind: "mlp", hidden: [64], embedding_dim: 8 },
    loss: { name: "triplet", config: { margin: 0.2 } },
    sampler: { name: "nearest-positive", config: {} },
    batch: { classes: CLASSES, per_class: 8 },
    steps,
    log_every: Math.max(1, Math.floor(steps / 4)),
    seed: 1,
  });
  for await (const event of run.events) {
    if (event.type === "step") console.log(`step ${event.data.step}: loss ${event.data.loss.toFixed(4)}`);
  }
  const trained = await run.result;

  // Mine: the triplets the sampler picks on the test embeddings.
  const { embeddings, labels } = await rt.embed({ model: trained.model, data, split: "test" });
  const { indices } = await rt.mine({ sampler: "nearest-positive", embeddings, labels });
  console.log(`mined ${indices.anchors.size} triplets from ${labels.size} test embeddings`);

  // Evaluate: retrieval on the classes, and on the sub-classes the classes are made of.
  const report = await rt.evaluate({ model: trained.model, data, split: "test" });
  const summary = {
    steps: trained.steps,
    triplets: indices.anchors.size,
    coarse_recall_at_1: report.metrics.coarse["recall@1"],
    fine_recall_at_1: report.metrics.fine?.["recall@1"],
  };
  console.log(`class R@1 ${summary.coarse_recall_at_1}, sub-class R@1 ${summary.fine_recall_at_1}`);
  console.log(JSON.stringify(summary));
  await rt.call("release", { id: trained.model });
}

try {
  await main();
} catch (err) {
  if (err instanceof StartError) {
    // No Python side yet, or a broken one: the message names the interpreter, what it
    // lacks and the command that fixes it (err.fix: `npx nearpos setup`).
    console.error(`${err.name} (${err.reason}): ${err.message}`);
    process.exitCode = 1;
  } else throw err;
}
