import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { formatDuration, Progress, renderBar } from "./progress.ts";

class Sink extends Writable {
  text = "";
  override _write(c: Buffer, _e: string, cb: () => void): void {
    this.text += c.toString();
    cb();
  }
}

describe("progress", () => {
  it("formats durations and bars", () => {
    expect(formatDuration(5)).toBe("5s");
    expect(formatDuration(125)).toBe("2m05s");
    expect(formatDuration(3720)).toBe("1h02m");
    expect(formatDuration(Number.NaN)).toBe("--");
    expect(renderBar(0.5, 10)).toBe("#####>....");
    expect(renderBar(1, 10)).toBe("##########");
  });

  it("estimates the time left from the rate so far", () => {
    let t = 0;
    const p = new Progress({ stream: new Sink(), tty: false, now: () => t });
    const s = { label: "r", runsDone: 0, runsTotal: 4, stepsDone: 0, stepsTotal: 400 };
    p.eta(s);
    t = 10_000;
    expect(p.eta({ ...s, stepsDone: 100 })).toBeCloseTo(30, 9);
  });

  it("redraws one line on a TTY and prints rate-limited plain lines elsewhere", () => {
    let t = 0;
    const tty = new Sink();
    const a = new Progress({ stream: tty, tty: true, now: () => t });
    const plain = new Sink();
    const b = new Progress({ stream: plain, tty: false, now: () => t, plainInterval: 10 });
    for (let i = 0; i <= 100; i++) {
      t = i * 1000;
      const s = { label: "run", runsDone: 0, runsTotal: 1, stepsDone: i, stepsTotal: 100 };
      a.update(s);
      b.update(s);
    }
    expect(tty.text).toContain("\r\x1b[2K");
    expect(tty.text).not.toContain("\n");
    const lines = plain.text.trim().split("\n");
    expect(lines.length).toBe(11);
    expect(plain.text).not.toContain("\x1b");
    expect(lines.at(-1)).toMatch(/100% run 1\/1 run .*ETA 0s/);
  });
});
