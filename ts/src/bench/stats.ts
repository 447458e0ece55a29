/**
 * Small-sample statistics for benchmark summaries: Student-t intervals over seeds and
 * Welch's comparison of two groups. Dependency-free; accurate to ~1e-10 in the t quantile.
 * @internal
 */

/** Natural log of the gamma function (Lanczos, g = 7). */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
    -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const xx = x - 1;
  let a = c[0]!;
  const t = xx + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (xx + i);
  return 0.5 * Math.log(2 * Math.PI) + (xx + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction for the regularised incomplete beta (modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** Regularised incomplete beta function I_x(a, b). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lnFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x);
  const front = Math.exp(lnFront);
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(a, b, x)) / a;
  return 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** CDF of Student's t distribution with `df` degrees of freedom (df may be fractional). */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`degrees of freedom must be > 0, got ${df}`);
  const x = df / (df + t * t);
  const tail = 0.5 * incompleteBeta(x, df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** Quantile of Student's t: the value q with P(T <= q) = p. */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`p must be in (0, 1), got ${p}`);
  if (!(df > 0)) throw new RangeError(`degrees of freedom must be > 0, got ${df}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  // Bracket then bisect: the CDF is monotone, and 200 halvings reach double precision.
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, hi); i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Mean and two-sided interval of a sample. */
export interface Summary {
  /** Number of values. */
  n: number;
  mean: number;
  /** Sample standard deviation (n - 1 denominator); NaN when n < 2. */
  sd: number;
  /** Half-width of the interval; NaN when n < 2 (no interval from one seed). */
  halfWidth: number;
  low: number;
  high: number;
  /** Confidence level of the interval, e.g. 0.95. */
  level: number;
}

/** Arithmetic mean; NaN for an empty array. */
export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample variance (n - 1 denominator); NaN when fewer than two values. */
export function variance(xs: readonly number[]): number {
  if (xs.length < 2) return Number.NaN;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return s / (xs.length - 1);
}

/**
 * Mean with a t-distribution interval over the values (seeds): mean +- t_{(1+level)/2, n-1} * sd / sqrt(n).
 * @param xs - one value per seed
 * @param level - confidence level, default 0.95
 */
export function tInterval(xs: readonly number[], level = 0.95): Summary {
  const n = xs.length;
  const m = mean(xs);
  const sd = Math.sqrt(variance(xs));
  const halfWidth = n >= 2 ? studentTQuantile((1 + level) / 2, n - 1) * (sd / Math.sqrt(n)) : Number.NaN;
  return { n, mean: m, sd, halfWidth, low: m - halfWidth, high: m + halfWidth, level };
}

/**
 * Paired comparison: the t interval of the per-pair differences b[i] - a[i] (pairs share a seed:
 * the same initialisation and batch order), which removes the seed-to-seed variation both share.
 * @throws RangeError when the arrays differ in length
 */
export function pairedDifference(a: readonly number[], b: readonly number[], level = 0.95): Summary {
  if (a.length !== b.length) throw new RangeError(`paired samples need equal lengths, got ${a.length} and ${b.length}`);
  return tInterval(b.map((x, i) => x - a[i]!), level);
}

/** Welch's comparison of two independent groups (B minus A). */
export interface WelchResult {
  /** mean(B) - mean(A). */
  diff: number;
  /** Interval for the difference at `level`. */
  low: number;
  high: number;
  halfWidth: number;
  /** Welch-Satterthwaite degrees of freedom. */
  df: number;
  t: number;
  /** Two-sided p-value. */
  p: number;
  level: number;
}

/**
 * Welch's t interval and test for mean(b) - mean(a), no equal-variance assumption.
 * Needs at least two values per group; otherwise every field but `diff` is NaN.
 */
export function welch(a: readonly number[], b: readonly number[], level = 0.95): WelchResult {
  const diff = mean(b) - mean(a);
  const va = variance(a) / a.length;
  const vb = variance(b) / b.length;
  const se = Math.sqrt(va + vb);
  const nan = { diff, low: Number.NaN, high: Number.NaN, halfWidth: Number.NaN, df: Number.NaN, t: Number.NaN, p: Number.NaN, level };
  if (!(a.length >= 2 && b.length >= 2) || !Number.isFinite(se)) return nan;
  if (se === 0) {
    // Both groups constant: the difference is exact.
    return { diff, low: diff, high: diff, halfWidth: 0, df: Number.POSITIVE_INFINITY, t: diff === 0 ? 0 : Math.sign(diff) * Infinity, p: diff === 0 ? 1 : 0, level };
  }
  const df = (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  const t = diff / se;
  const halfWidth = studentTQuantile((1 + level) / 2, df) * se;
  const p = 2 * (1 - studentTCdf(Math.abs(t), df));
  return { diff, low: diff - halfWidth, high: diff + halfWidth, halfWidth, df, t, p, level };
}
