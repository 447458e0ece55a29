/**
 * Stopping a runtime: the steps close() takes for a spawned process and for the shared
 * pythonia process.
 * @internal
 */
import type { PythoniaTransport } from "../transport/pythonia.ts";
import { sleep, type RuntimeProcess } from "./process.ts";

/** How long close() waits for each step (shutdown reply, exit after stdin EOF, SIGTERM). */
export const CLOSE_STEP_MS = 2000;

/**
 * Stops a spawned runtime: `shutdown` (the shutdown request), then stdin EOF, SIGTERM,
 * SIGKILL, each given {@link CLOSE_STEP_MS}. A `stalled` one (stopped, hung) would not answer,
 * and a stopped process does not even take SIGTERM: SIGKILL at once, delivered regardless.
 */
export async function stopProcess(proc: RuntimeProcess, shutdown: () => Promise<unknown>, stalled: boolean): Promise<void> {
  if (!proc.alive) return;
  if (stalled) {
    proc.kill("SIGKILL");
    await proc.waitExit(CLOSE_STEP_MS);
    return;
  }
  try {
    await shutdown();
  } catch {
    // Not answering is what SIGTERM is for.
  }
  if (await proc.waitExit(CLOSE_STEP_MS)) return;
  proc.child.stdin?.end();
  if (await proc.waitExit(CLOSE_STEP_MS)) return;
  proc.kill("SIGTERM");
  if (await proc.waitExit(CLOSE_STEP_MS)) return;
  proc.kill("SIGKILL");
  await proc.waitExit(CLOSE_STEP_MS);
}

/**
 * Stops this handle's server in the Python process that every pythonia runtime shares
 * (`shutdown`, the shutdown request); the transport then releases the process (the last one
 * ends it).
 * @returns whether the server stopped in time
 */
export async function stopPythoniaServer(py: PythoniaTransport, shutdown: () => Promise<unknown>): Promise<boolean> {
  try {
    await shutdown();
    return await Promise.race([py.stopped.then(() => true), sleep(CLOSE_STEP_MS).then(() => false)]);
  } catch {
    return false; // closing the transport cancels whatever still runs
  }
}
