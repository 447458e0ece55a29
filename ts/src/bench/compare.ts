/**
 * Compares two result folders: the same variants and metrics side by side, with the
 * difference (B - A) and its Welch 95% interval.
 * @internal
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pct, SUMMARY_COLUMNS, type Column } from "./results.ts";
import { tInterval, welch, type Summary, type WelchResult } from "./stats.ts";

interface ResultsFile {
  suite: string;
  config_sha256: string;
  /** `embedding`: with cross-validation, "fold mean" or "concatenated (F x d)". */
  summary: { loss: string; sampler: string; baseline: boolean; embedding?: string; seeds: number[]; values: Record<string, number[]> }[];
}

/** One compared cell. */
export interface CompareRow {
  loss: string;
  sampler: string;
  metric: string;
  a: Summary;
  b: Summary;
  diff: WelchResult;
}

/** Everything `bench compare` reports. */
export interface Comparison {
  a: { dir: string; suite: string; config_sha256: string };
  b: { dir: string; suite: string; config_sha256: string };
  rows: CompareRow[];
  onlyA: string[];
  onlyB: string[];
}

function load(dir: string): ResultsFile {
  const p = join(dir, "results.json");
  if (!existsSync(p)) throw new Error(`${dir}: no results.json (is it a folder written by "nearpos bench"?)`);
  return JSON.parse(readFileSync(p, "utf8")) as ResultsFile;
}

/** Compares result folders A and B. */
export function compareResults(dirA: string, dirB: string, columns: readonly Column[] = SUMMARY_COLUMNS): Comparison {
  const A = load(dirA);
  const B = load(dirB);
  const key = (s: { loss: string; sampler: string; embedding?: string }) => `${s.loss} / ${s.sampler}${s.embedding ? `, ${s.embedding}` : ""}`;
  const bMap = new Map(B.summary.map((s) => [key(s), s]));
  const aKeys = new Set(A.summary.map(key));
  const rows: CompareRow[] = [];
  for (const sa of A.summary) {
    const sb = bMap.get(key(sa));
    if (!sb) continue;
    for (const c of columns) {
      const va = sa.values[c.key];
      const vb = sb.values[c.key];
      if (!va || !vb) continue;
      rows.push({ loss: sa.loss, sampler: sa.embedding ? `${sa.sampler}, ${sa.embedding}` : sa.sampler, metric: c.key, a: tInterval(va), b: tInterval(vb), diff: welch(va, vb) });
    }
  }
  return {
    a: { dir: dirA, suite: A.suite, config_sha256: A.config_sha256 },
    b: { dir: dirB, suite: B.suite, config_sha256: B.config_sha256 },
    rows,
    onlyA: A.summary.map(key).filter((k) => !bMap.has(k)),
    onlyB: B.summary.map(key).filter((k) => !aKeys.has(k)),
  };
}

/** Text table of a comparison. */
export function comparisonTable(c: Comparison): string {
  const head = ["loss / sampler", "metric", "A", "B", "B - A [95% Welch]", "p"];
  const fmt = (s: Summary) => (Number.isFinite(s.halfWidth) ? `${pct(s.mean)} ± ${pct(s.halfWidth)}` : pct(s.mean));
  const rows = c.rows.map((r) => [`${r.loss} / ${r.sampler}`, r.metric, fmt(r.a), fmt(r.b), `${r.diff.diff >= 0 ? "+" : ""}${pct(r.diff.diff)} [${pct(r.diff.low)}, ${pct(r.diff.high)}]`, Number.isFinite(r.diff.p) ? r.diff.p.toFixed(3) : "n/a"]);
  const widths = head.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j]!.length)));
  const line = (r: string[]) => r.map((x, j) => (j < 2 ? x.padEnd(widths[j]!) : x.padStart(widths[j]!))).join("  ");
  const out = [`A: ${c.a.dir} (${c.a.suite})`, `B: ${c.b.dir} (${c.b.suite})`, "", line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)];
  if (c.onlyA.length) out.push("", `only in A: ${c.onlyA.join(", ")}`);
  if (c.onlyB.length) out.push("", `only in B: ${c.onlyB.join(", ")}`);
  out.push("", "percent; mean ± half-width of the 95% t-interval over seeds; difference with Welch's 95% interval and two-sided p");
  return out.join("\n");
}
