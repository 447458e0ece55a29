/**
 * A dependency-free progress renderer for long benchmark runs. On a TTY it redraws one
 * status line (bar, counts, ETA); elsewhere (CI logs, pipes) it prints plain lines at a
 * bounded rate so logs stay short.
 * @internal
 */
import type { Writable } from "node:stream";

/** What the renderer shows. */
export interface ProgressState {
  /** Label of the current item, e.g. the run id. */
  label: string;
  /** Runs finished / total. */
  runsDone: number;
  runsTotal: number;
  /** Steps finished / total over all runs (drives the bar and the ETA). */
  stepsDone: number;
  stepsTotal: number;
  /** Free text after the bar (loss, current step). */
  detail?: string;
}

/** Formats seconds as "1h02m", "4m05s" or "12s". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "--";
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}

/** Renders a bar of `width` cells for a fraction in [0, 1]. */
export function renderBar(fraction: number, width = 24): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.floor(f * width);
  return `${"#".repeat(full)}${full < width ? ">" : ""}${".".repeat(Math.max(0, width - full - 1))}`;
}

/** Options of {@link Progress}. */
export interface ProgressOptions {
  stream?: Writable & { isTTY?: boolean; columns?: number };
  /** Force TTY or plain mode; default: the stream's isTTY. */
  tty?: boolean;
  /** Minimum seconds between plain lines (default 10). */
  plainInterval?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
  /** Print nothing. */
  silent?: boolean;
}

/** TTY-aware progress line with ETA. */
export class Progress {
  private readonly stream: Writable & { isTTY?: boolean; columns?: number };
  private readonly tty: boolean;
  private readonly plainInterval: number;
  private readonly now: () => number;
  private readonly silent: boolean;
  private readonly start: number;
  private lastDraw = 0;
  private lastPlain = -Infinity;
  private startSteps: number | undefined;
  private drawn = false;

  constructor(opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? Boolean(this.stream.isTTY);
    this.plainInterval = (opts.plainInterval ?? 10) * 1000;
    this.now = opts.now ?? (() => Date.now());
    this.silent = opts.silent ?? false;
    this.start = this.now();
  }

  /** Estimated seconds left from the rate so far (steps already done at the start, e.g. resumed runs, do not count). */
  eta(state: ProgressState): number {
    this.startSteps ??= state.stepsDone;
    const done = state.stepsDone - this.startSteps;
    const elapsed = (this.now() - this.start) / 1000;
    if (done <= 0 || elapsed <= 0) return Number.NaN;
    return ((state.stepsTotal - state.stepsDone) * elapsed) / done;
  }

  /** The line for a state (no newline). */
  line(state: ProgressState): string {
    const frac = state.stepsTotal > 0 ? state.stepsDone / state.stepsTotal : 0;
    const pct = `${(frac * 100).toFixed(0).padStart(3)}%`;
    const elapsed = formatDuration((this.now() - this.start) / 1000);
    return `[${renderBar(frac)}] ${pct} run ${Math.min(state.runsDone + 1, state.runsTotal)}/${state.runsTotal} ${state.label}${state.detail ? ` ${state.detail}` : ""} | ${elapsed} elapsed, ETA ${formatDuration(this.eta(state))}`;
  }

  /** Shows a state: redraws on a TTY (at most 10 times a second), prints a plain line now and then elsewhere. */
  update(state: ProgressState, force = false): void {
    if (this.silent) return;
    const t = this.now();
    if (this.tty) {
      if (!force && t - this.lastDraw < 100) return;
      this.lastDraw = t;
      let text = this.line(state);
      const cols = this.stream.columns ?? 120;
      if (text.length > cols - 1) text = text.slice(0, cols - 1);
      this.stream.write(`\r\x1b[2K${text}`);
      this.drawn = true;
    } else {
      if (!force && t - this.lastPlain < this.plainInterval) return;
      this.lastPlain = t;
      this.stream.write(`${this.line(state)}\n`);
    }
  }

  /** Prints a message on its own line (keeps the bar below it on a TTY). */
  log(message: string): void {
    if (this.silent) return;
    if (this.tty && this.drawn) this.stream.write("\r\x1b[2K");
    this.stream.write(`${message}\n`);
    this.drawn = false;
  }

  /** Clears the bar. */
  done(): void {
    if (this.silent) return;
    if (this.tty && this.drawn) this.stream.write("\r\x1b[2K");
    this.drawn = false;
  }
}
