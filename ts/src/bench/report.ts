/**
 * Human-readable outputs of a suite run: the console table, summary.md, a self-contained
 * report.html (inline SVG: learning curves, 2-D projections, bars with 95% intervals) and the
 * standalone embedding figure. Every number is formatted by `pct`, so tables parse back to
 * the JSON results exactly.
 * @internal
 */
import { bestPerColumn, embeddingLabel, pct, SUMMARY_COLUMNS, type ClaimVerdict, type Column, type Variant } from "./results.ts";
import type { Metrics, Projection } from "./types.ts";

/** Learning curve of one run: metric value per eval step. */
export interface Curve {
  lossId: string;
  sampler: string;
  seed: number;
  history: { step: number; metrics: Metrics }[];
}

/** Everything a report shows. */
export interface ReportInput {
  suiteName: string;
  description: string;
  variants: Variant[];
  claims: ClaimVerdict[];
  curves: Curve[];
  /** Projection per "<lossId>__<sampler>" (one seed). */
  projections: Record<string, { seed: number; projection: Projection }>;
  columns?: readonly Column[];
  /** Lines of provenance (versions, commit, device). */
  provenance: string[];
  /** Most points drawn per projection panel (default 1500). */
  maxPoints?: number;
  /** Fine-label R@1 per coarse class ("fine.recall@1/class=<c>" keys), aggregated like `variants`. */
  byClass?: { keys: string[]; variants: Variant[] };
}

/** The per-coarse-class keys of fine-label R@1 found in metric sets, in class order. */
export function classKeysOf(sets: readonly Metrics[]): string[] {
  const classes = new Set<string>();
  for (const m of sets) for (const k of Object.keys(m.fine ?? {})) if (k.startsWith("recall@1/class=")) classes.add(k.slice("recall@1/class=".length));
  return [...classes].sort((a, b) => Number(a) - Number(b) || a.localeCompare(b)).map((c) => `fine.recall@1/class=${c}`);
}

/** Fine labels of each coarse class, read from a projection that has both (empty without). */
export function coarseMembers(projections: ReportInput["projections"]): Map<number, number[]> {
  const out = new Map<number, Set<number>>();
  const p = Object.values(projections).find((x) => x.projection.fineLabels)?.projection;
  if (!p?.fineLabels) return new Map();
  p.labels.forEach((c, i) => out.set(c, (out.get(c) ?? new Set()).add(p.fineLabels![i]!)));
  return new Map([...out.entries()].sort((a, b) => a[0] - b[0]).map(([c, f]) => [c, [...f].sort((a, b) => a - b)]));
}

function cell(v: Variant, key: string): string {
  const s = v.stats[key];
  if (!s) return "n/a";
  return Number.isFinite(s.halfWidth) ? `${pct(s.mean)} ± ${pct(s.halfWidth)}` : pct(s.mean);
}

function rowLabel(v: Variant): string {
  const emb = embeddingLabel(v);
  return `${v.lossId} / ${v.sampler}${v.baseline ? " (baseline)" : ""}${emb ? `, ${emb}` : ""}`;
}

/** The note under a table with cross-validation rows (empty without). */
function foldNote(variants: readonly Variant[]): string {
  const cv = variants.find((v) => v.folds !== undefined || v.concatenated);
  if (!cv) return "";
  const f = cv.concatenated?.folds ?? cv.folds;
  return `Fold mean: mean over the ${f} folds of each fold's selected model; concatenated (F x d): the ${f} selected models' L2-normalised test embeddings joined into one F x d embedding, evaluated once (MLRC).`;
}

/** Plain-text table for the terminal, best per column marked with '*'. */
export function textTable(variants: readonly Variant[], columns: readonly Column[] = SUMMARY_COLUMNS): string {
  const keys = columns.map((c) => c.key);
  const best = bestPerColumn(variants, keys);
  const header = ["loss / sampler", "seeds", ...columns.map((c) => c.title)];
  const rows = variants.map((v, i) => [rowLabel(v), String(v.seeds.length), ...keys.map((k) => `${cell(v, k)}${best[k]!.includes(i) ? " *" : "  "}`)]);
  const widths = header.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j]!.length)));
  const fmt = (r: string[]) => r.map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join("  ");
  return [fmt(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(fmt), "", "mean ± half-width of the 95% t-interval over seeds, in percent; * best mean per column", ...(foldNote(variants) ? [foldNote(variants)] : [])].join("\n");
}

/** A signed difference in points with its interval: "+5.30 [3.10, 7.50]". */
function signedPoints(d: { mean: number; low: number; high: number }): string {
  const sign = d.mean > 0 ? "+" : "";
  return `${sign}${pct(d.mean)} [${pct(d.low)}, ${pct(d.high)}]`;
}

/** Claim verdicts as sentences: unpaired means, then the paired per-seed difference and its 95% interval. */
export function claimLines(claims: readonly ClaimVerdict[]): string[] {
  return claims.map((c) => {
    const g = c.gain;
    const head = `${c.lossId}: ${c.method} vs ${c.baselineSampler}, ${g.metric} ${pct(g.methodMean)} vs ${pct(g.baselineMean)} (paired gain over ${g.seeds.length} seeds ${signedPoints(g.diff)} points, required ${pct(c.minGain)})`;
    const k = c.guard;
    const guard = k ? `; ${k.metric} ${pct(k.methodMean)} vs ${pct(k.baselineMean)} (paired difference ${signedPoints(k.diff)}, ${k.kept ? "not lost" : Number.isFinite(k.diff.high) ? "lost" : "not judged"})` : "";
    return c.held ? `HELD: ${head}${guard}.` : `NOT HELD: ${head}${guard}. Why: ${c.reasons.join("; ")}.`;
  });
}

/** summary.md */
export function summaryMarkdown(r: ReportInput): string {
  const columns = r.columns ?? SUMMARY_COLUMNS;
  const keys = columns.map((c) => c.key);
  const best = bestPerColumn(r.variants, keys);
  const lines = [`# ${r.suiteName}`, "", r.description, "", `| loss / sampler | seeds | ${columns.map((c) => c.title).join(" | ")} |`, `|---|---:|${columns.map(() => "---:").join("|")}|`];
  r.variants.forEach((v, i) => {
    lines.push(`| ${rowLabel(v)} | ${v.seeds.length} | ${keys.map((k) => (best[k]!.includes(i) ? `**${cell(v, k)}**` : cell(v, k))).join(" | ")} |`);
  });
  lines.push("", `Mean ± half-width of the 95% Student-t interval over seeds, in percent. Bold: best mean per column. R@1, MAP@R and NMI on the coarse (training) labels; fine R@1 and fine NMI on the fine labels (sub-cluster retention).${foldNote(r.variants) ? ` ${foldNote(r.variants)}` : ""}`, "");
  if (r.claims.length > 0) {
    lines.push("## Claim", "", ...claimLines(r.claims).map((l) => `- ${l}`), "");
  }
  lines.push("## Provenance", "", ...r.provenance.map((p) => `- ${p}`), "");
  return lines.join("\n");
}

// ---- SVG helpers ---------------------------------------------------------------------------

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function n(x: number): string {
  return Number.isFinite(x) ? x.toFixed(1) : "0";
}

/** CSS of the scatter dots: class fN is fine label N (mod 10). */
export const DOT_STYLE = PALETTE.map((c, i) => `.f${i}{fill:${c};fill-opacity:.7}`).join("");

/** Scatter plot of one projection coloured by fine label (coarse when no fine labels). */
export function scatterSvg(p: Projection, title: string, size = 260, maxPoints = 1500): string {
  const labels = p.fineLabels ?? p.labels;
  const count = labels.length;
  const stride = Math.max(1, Math.ceil(count / maxPoints));
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (let i = 0; i < count; i++) {
    const x = p.points[2 * i]!, y = p.points[2 * i + 1]!;
    minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y);
  }
  const pad = 12, top = 22;
  const sx = (x: number) => pad + ((x - minX) / (maxX - minX || 1)) * (size - 2 * pad);
  const sy = (y: number) => top + (1 - (y - minY) / (maxY - minY || 1)) * (size - top - pad);
  const dots: string[] = [];
  for (let i = 0; i < count; i += stride) {
    // Colours come from the figure's <style> (class fN), which keeps large figures small.
    dots.push(`<circle class="f${labels[i]! % PALETTE.length}" cx="${n(sx(p.points[2 * i]!))}" cy="${n(sy(p.points[2 * i + 1]!))}" r="1.6"/>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}"><style>${DOT_STYLE}</style><rect width="${size}" height="${size}" fill="#fff" stroke="#ccc"/><text x="${size / 2}" y="15" font-size="12" text-anchor="middle" font-family="sans-serif">${esc(title)}</text>${dots.join("")}</svg>`;
}

/** Figure: one row per loss, baseline beside the method, coloured by fine label. */
export function embeddingFigure(r: ReportInput, size = 260): string {
  const lossIds = [...new Set(r.variants.map((v) => v.lossId))];
  const cells: { x: number; y: number; svg: string }[] = [];
  let row = 0;
  let cols = 0;
  for (const lossId of lossIds) {
    const vs = r.variants.filter((v) => v.lossId === lossId && !v.concatenated && r.projections[`${v.lossId}__${v.sampler}`]);
    if (vs.length === 0) continue;
    vs.forEach((v, j) => {
      const pr = r.projections[`${v.lossId}__${v.sampler}`]!;
      cells.push({ x: j * (size + 8), y: row * (size + 8), svg: scatterSvg(pr.projection, `${lossId} / ${v.sampler} (seed ${pr.seed})`, size, r.maxPoints) });
    });
    cols = Math.max(cols, vs.length);
    row++;
  }
  const w = Math.max(1, cols) * (size + 8);
  const { svg: legend, height: legendH } = legendSvg(coarseMembers(r.projections), w);
  const h = row * (size + 8) + legendH;
  const body = cells.map((c) => `<g transform="translate(${c.x},${c.y})">${c.svg.replace(/^<svg[^>]*><style>[^<]*<\/style>/, "").replace(/<\/svg>$/, "")}</g>`).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><style>${DOT_STYLE}</style><rect width="${w}" height="${h}" fill="#fff"/>${body}<g transform="translate(0,${h - legendH})">${legend}</g></svg>\n`;
}

/**
 * Legend of the embedding figure: colour = fine label, grouped under the coarse class that
 * holds it ("class 0: [0] [1]"); without coarse/fine pairs, one swatch per colour.
 */
export function legendSvg(members: Map<number, number[]>, width: number): { svg: string; height: number } {
  const swatch = (x: number, y: number, fine: number, text: string) =>
    `<rect x="${x}" y="${y}" width="10" height="10" fill="${PALETTE[fine % PALETTE.length]}"/><text x="${x + 13}" y="${y + 9}" font-size="11" font-family="sans-serif">${esc(text)}</text>`;
  const groups = members.size > 0 ? [...members.entries()].map(([c, fines]) => ({ head: `class ${c}:`, fines })) : [{ head: "fine label:", fines: PALETTE.map((_, i) => i) }];
  const parts: string[] = [];
  let x = 8;
  let y = 6;
  for (const g of groups) {
    const span = 8 + g.head.length * 6.5 + g.fines.length * 38;
    if (x > 8 && x + span > width) {
      x = 8;
      y += 18;
    }
    parts.push(`<text x="${n(x)}" y="${y + 9}" font-size="11" font-weight="bold" font-family="sans-serif">${esc(g.head)}</text>`);
    x += g.head.length * 6.5 + 6;
    for (const f of g.fines) {
      parts.push(swatch(x, y, f, String(f)));
      x += 38;
    }
    x += 14;
  }
  const note = members.size > 0 ? "colour: fine label; trained on the coarse classes" : "colour: fine label (or class)";
  parts.push(`<text x="8" y="${y + 27}" font-size="10" fill="#555" font-family="sans-serif">${esc(note)}</text>`);
  return { svg: parts.join(""), height: y + 34 };
}

/**
 * Per coarse class, fine-label R@1 of the baseline beside each other sampler of one loss, with
 * 95% intervals over seeds: where the sub-clusters of each class are kept or lost.
 */
export function classRecallSvg(r: ReportInput, lossId: string, width = 560): string {
  const by = r.byClass;
  if (!by || by.keys.length === 0) return "";
  const vs = by.variants.filter((v) => v.lossId === lossId && !v.concatenated).sort((a, b) => Number(b.baseline) - Number(a.baseline));
  if (vs.length === 0) return "";
  const members = coarseMembers(r.projections);
  const barH = 11, gap = 10, L = 150, R = 60, T = 24;
  const groupH = vs.length * barH + gap;
  const height = T + by.keys.length * groupH + 26;
  const all = vs.flatMap((v) => by.keys.flatMap((k) => (v.stats[k] ? [Number.isFinite(v.stats[k]!.low) ? v.stats[k]!.low : v.stats[k]!.mean] : [])));
  if (all.length === 0) return "";
  const lo = Math.max(0, Math.min(...all) - 0.02), hi = 1;
  const sx = (x: number) => L + ((Math.min(hi, Math.max(lo, x)) - lo) / (hi - lo || 1)) * (width - L - R); // whiskers clipped to the axis
  const colours = vs.map((v, i) => (v.baseline ? "#9aa9b8" : PALETTE[i % PALETTE.length]!));
  const rows = by.keys.map((k, gi) => {
    const c = k.slice("fine.recall@1/class=".length);
    const fines = members.get(Number(c));
    const y0 = T + gi * groupH;
    const label = `<text x="${L - 6}" y="${y0 + (vs.length * barH) / 2 + 4}" font-size="11" text-anchor="end" font-family="sans-serif">${esc(`class ${c}${fines ? ` (fine ${fines.join(", ")})` : ""}`)}</text>`;
    const bars = vs.map((v, i) => {
      const s = v.stats[k];
      if (!s) return "";
      const y = y0 + i * barH;
      const err = Number.isFinite(s.halfWidth) ? `<line x1="${n(sx(s.low))}" x2="${n(sx(s.high))}" y1="${y + 5}" y2="${y + 5}" stroke="#000"/><line x1="${n(sx(s.low))}" x2="${n(sx(s.low))}" y1="${y + 2}" y2="${y + 8}" stroke="#000"/><line x1="${n(sx(s.high))}" x2="${n(sx(s.high))}" y1="${y + 2}" y2="${y + 8}" stroke="#000"/>` : "";
      return `<rect x="${L}" y="${y}" width="${n(Math.max(0, sx(s.mean) - L))}" height="${barH - 2}" fill="${colours[i]}"/>${err}<text x="${width - R + 4}" y="${y + 9}" font-size="10" font-family="sans-serif">${pct(s.mean)}</text>`;
    });
    return label + bars.join("");
  });
  const keyY = height - 12;
  const key = vs.map((v, i) => `<rect x="${L + i * 170}" y="${keyY - 9}" width="10" height="10" fill="${colours[i]}"/><text x="${L + 14 + i * 170}" y="${keyY}" font-size="11" font-family="sans-serif">${esc(v.sampler + (v.baseline ? " (baseline)" : ""))}</text>`).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect width="${width}" height="${height}" fill="#fff" stroke="#ccc"/><text x="${width / 2}" y="15" font-size="12" text-anchor="middle" font-family="sans-serif">${esc(`${lossId}: fine-label R@1 per coarse class (%, axis from ${pct(lo)}), 95% intervals over seeds`)}</text>${rows.join("")}${key}</svg>`;
}

/** Stacks standalone SVG figures vertically into one SVG. */
export function stackSvgs(figures: readonly string[]): string {
  const size = (svg: string, attr: string) => Number(new RegExp(`${attr}="(\\d+(?:\\.\\d+)?)"`).exec(svg)?.[1] ?? 0);
  let y = 0;
  const parts = figures.map((f) => {
    const part = `<g transform="translate(0,${y})">${f.replace(/^<svg[^>]*>/, "").replace(/<\/svg>\s*$/, "")}</g>`;
    y += size(f, "height") + 8;
    return part;
  });
  const w = Math.max(...figures.map((f) => size(f, "width")));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${y}" viewBox="0 0 ${w} ${y}">${parts.join("")}</svg>\n`;
}

/** Learning curves of one metric: mean over seeds per variant. */
export function curvesSvg(r: ReportInput, key: string, lossId: string, width = 420, height = 240): string {
  const [group, name] = [key.slice(0, key.indexOf(".")), key.slice(key.indexOf(".") + 1)] as ["coarse" | "fine", string];
  const bySampler = new Map<string, Map<number, number[]>>();
  for (const c of r.curves.filter((c) => c.lossId === lossId)) {
    const m = bySampler.get(c.sampler) ?? new Map<number, number[]>();
    for (const h of c.history) {
      const v = h.metrics[group]?.[name];
      if (typeof v === "number") m.set(h.step, [...(m.get(h.step) ?? []), v]);
    }
    bySampler.set(c.sampler, m);
  }
  const series = [...bySampler.entries()].map(([s, m]) => ({ s, pts: [...m.entries()].sort((a, b) => a[0] - b[0]).map(([st, vs]) => [st, vs.reduce((a, b) => a + b, 0) / vs.length] as [number, number]) }));
  const all = series.flatMap((s) => s.pts);
  if (all.length === 0) return "";
  const [x0, x1] = [0, Math.max(...all.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  const L = 44, R = 10, T = 22, B = 28;
  const sx = (x: number) => L + ((x - x0) / (x1 - x0 || 1)) * (width - L - R);
  const sy = (y: number) => T + (1 - (y - y0) / (y1 - y0 || 1)) * (height - T - B);
  const lines = series.map((s, i) => `<polyline fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="2" points="${s.pts.map((p) => `${n(sx(p[0]))},${n(sy(p[1]))}`).join(" ")}"/><text x="${L + 6}" y="${T + 14 + 14 * i}" font-size="11" fill="${PALETTE[i % PALETTE.length]}" font-family="sans-serif">${esc(s.s)}</text>`).join("");
  const axes = `<line x1="${L}" y1="${height - B}" x2="${width - R}" y2="${height - B}" stroke="#333"/><line x1="${L}" y1="${T}" x2="${L}" y2="${height - B}" stroke="#333"/><text x="${L - 4}" y="${sy(y1) + 4}" font-size="10" text-anchor="end" font-family="sans-serif">${pct(y1)}</text><text x="${L - 4}" y="${sy(y0) + 4}" font-size="10" text-anchor="end" font-family="sans-serif">${pct(y0)}</text><text x="${width - R}" y="${height - 10}" font-size="10" text-anchor="end" font-family="sans-serif">step ${x1}</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect width="${width}" height="${height}" fill="#fff" stroke="#ccc"/><text x="${width / 2}" y="15" font-size="12" text-anchor="middle" font-family="sans-serif">${esc(`${lossId}: ${key} (%) by step, mean over seeds`)}</text>${axes}${lines}</svg>`;
}

/** Bars of one metric with 95% intervals, one bar per variant. */
export function barsSvg(variants: readonly Variant[], key: string, title: string, width = 520): string {
  const vs = variants.filter((v) => v.stats[key]);
  if (vs.length === 0) return "";
  const rowH = 20, L = 230, R = 60, T = 24;
  const height = T + vs.length * rowH + 10;
  const lows = vs.map((v) => (Number.isFinite(v.stats[key]!.low) ? v.stats[key]!.low : v.stats[key]!.mean));
  const highs = vs.map((v) => (Number.isFinite(v.stats[key]!.high) ? v.stats[key]!.high : v.stats[key]!.mean));
  const lo = Math.max(0, Math.min(...lows) - 0.02), hi = Math.min(1, Math.max(...highs) + 0.01);
  const sx = (x: number) => L + ((x - lo) / (hi - lo || 1)) * (width - L - R);
  const bars = vs.map((v, i) => {
    const s = v.stats[key]!;
    const y = T + i * rowH;
    const color = v.baseline ? "#9aa9b8" : "#2a7ab0";
    const err = Number.isFinite(s.halfWidth) ? `<line x1="${n(sx(s.low))}" x2="${n(sx(s.high))}" y1="${y + 8}" y2="${y + 8}" stroke="#000"/><line x1="${n(sx(s.low))}" x2="${n(sx(s.low))}" y1="${y + 4}" y2="${y + 12}" stroke="#000"/><line x1="${n(sx(s.high))}" x2="${n(sx(s.high))}" y1="${y + 4}" y2="${y + 12}" stroke="#000"/>` : "";
    return `<text x="${L - 6}" y="${y + 12}" font-size="11" text-anchor="end" font-family="sans-serif">${esc(rowLabel(v))}</text><rect x="${L}" y="${y + 2}" width="${n(Math.max(0, sx(s.mean) - L))}" height="12" fill="${color}"/>${err}<text x="${width - R + 4}" y="${y + 12}" font-size="10" font-family="sans-serif">${pct(s.mean)}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect width="${width}" height="${height}" fill="#fff" stroke="#ccc"/><text x="${width / 2}" y="15" font-size="12" text-anchor="middle" font-family="sans-serif">${esc(title)} (%, axis from ${pct(lo)})</text>${bars.join("")}</svg>`;
}

/** report.html: self-contained, no external resources. */
export function reportHtml(r: ReportInput): string {
  const columns = r.columns ?? SUMMARY_COLUMNS;
  const keys = columns.map((c) => c.key);
  const best = bestPerColumn(r.variants, keys);
  const rows = r.variants
    .map((v, i) => `<tr><td>${esc(rowLabel(v))}</td><td>${v.seeds.length}</td>${keys.map((k) => `<td data-key="${esc(k)}" data-mean="${v.stats[k] ? pct(v.stats[k]!.mean) : "n/a"}" data-half="${v.stats[k] ? pct(v.stats[k]!.halfWidth) : "n/a"}"${best[k]!.includes(i) ? ' class="best"' : ""}>${esc(cell(v, k))}</td>`).join("")}</tr>`)
    .join("\n");
  const lossIds = [...new Set(r.variants.map((v) => v.lossId))];
  const curves = lossIds.map((l) => ["fine.recall@1", "coarse.recall@1"].map((k) => curvesSvg(r, k, l)).join(" ")).join("\n");
  const bars = keys.map((k) => barsSvg(r.variants, k, columns.find((c) => c.key === k)!.title)).join("\n");
  const byClass = lossIds.map((l) => classRecallSvg(r, l)).filter(Boolean).join("\n");
  const claims = r.claims.length > 0 ? `<h2>Claim</h2><ul>${claimLines(r.claims).map((l) => `<li>${esc(l)}</li>`).join("")}</ul>` : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(r.suiteName)} - nearpos benchmark</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}.best{font-weight:bold;background:#eef6ee}svg{margin:4px}</style></head>
<body><h1>${esc(r.suiteName)}</h1><p>${esc(r.description)}</p>
<h2>Results</h2>
<table id="summary"><thead><tr><th>loss / sampler</th><th>seeds</th>${columns.map((c) => `<th>${esc(c.title)}</th>`).join("")}</tr></thead><tbody>
${rows}
</tbody></table>
<p>Mean ± half-width of the 95% Student-t interval over seeds, in percent; bold: best mean per column. Fine R@1 and fine NMI are measured on the fine labels (sub-cluster retention).${foldNote(r.variants) ? ` ${esc(foldNote(r.variants))}` : ""}</p>
${claims}
<h2>Test embeddings (2-D PCA, coloured by fine label)</h2>
${embeddingFigure(r)}
${byClass ? `<h2>Sub-clusters kept, per coarse class</h2>\n${byClass}` : ""}
<h2>Learning curves</h2>
${curves}
<h2>Means with 95% intervals</h2>
${bars}
<h2>Provenance</h2><ul>${r.provenance.map((p) => `<li>${esc(p)}</li>`).join("")}</ul>
</body></html>
`;
}
