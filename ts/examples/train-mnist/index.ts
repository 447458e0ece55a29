// Train an embedding on the built-in mnist data (5 coarse classes of 2 digits each),
// with nearest-positive sampling, then evaluate it on coarse and fine (digit) labels.
// Run: npx tsx ts/examples/train-mnist/index.ts [steps]
import { Runtime } from "nearpos";

const steps = Number(process.argv[2] ?? 300);

await using rt = await Runtime.start();
const run = rt.train({
  data: { kind: "mnist", per_digit: 300 },
  model: { kind: "mlp", hidden: [128], embedding_dim: 32 },
  loss: { name: "pml:TripletMarginLoss", config: { margin: 0.2 } }, // pytorch-metric-learning's loss, wrapped
  sampler: { name: "nearest-positive", config: {} },
  batch: { classes: 5, per_class: 6 },
  steps,
  eval_every: steps,
  seed: 1,
});
for await (const event of run.events) {
  if (event.type === "eval") console.log(`step ${event.data.step}: coarse R@1 ${event.data.metrics.coarse["recall@1"]}`);
}
const result = await run.result;
console.log(JSON.stringify({ steps: result.steps, metrics: result.metrics }));

const report = await rt.evaluate({ model: result.model, data: { kind: "mnist", per_digit: 300 }, projection: "pca" });
console.log(`fine-label R@1 (sub-cluster retention): ${report.metrics.fine?.["recall@1"]}`);
