/**
 * The floor: a zeromq.js DEALER against a bare pyzmq echo (raw_echo.py) with frames of the
 * sizes of a small call, no signing, no JSON. Whatever the protocol adds sits on top of it.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Dealer } from "zeromq";

const here = dirname(fileURLToPath(import.meta.url));

/** One round trip (`once`), the echo process's pid, and `close`. */
export interface Floor {
  once: () => Promise<void>;
  pid: number;
  close: () => void;
}

export async function openFloor(): Promise<Floor> {
  const dir = mkdtempSync(join(tmpdir(), "nearpos-raw-"));
  const endpoint = `ipc://${dir}/echo`;
  const python = process.env.NEARPOS_PYTHON ?? resolve(here, "../../../.venv/bin/python");
  const child = spawn(python, [join(here, "raw_echo.py"), endpoint], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  if ((await lines.next()).value !== "ready") throw new Error("raw_echo.py did not start");
  const dealer = new Dealer({ linger: 0 });
  dealer.connect(endpoint);
  const frames = [Buffer.from("nearpos/1"), Buffer.alloc(64), Buffer.alloc(250), Buffer.alloc(40)];
  return {
    once: async () => {
      await dealer.send(frames);
      await dealer.receive();
    },
    pid: child.pid as number,
    close: () => {
      dealer.close();
      child.stdin.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
