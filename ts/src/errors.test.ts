import { describe, expect, it } from "vitest";
import { ErrorCode, MessageTooLargeError, NearposError, PythonError, RuntimeExitedError, ValidationError, UnknownMethodError } from "./errors.ts";

describe("errors", () => {
  it("maps runtime error names to codes", () => {
    expect(new PythonError("ValueError", "bad", []).code).toBe(ErrorCode.pythonError);
    expect(new PythonError("InvalidParams", "bad", []).code).toBe("invalid_params");
    expect(new PythonError("UnknownMethod", "bad", []).code).toBe("unknown_method");
    expect(new PythonError("RuntimeShuttingDown", "bye", []).code).toBe("closed");
    expect(new PythonError("ProtocolError", "bad tensor", []).code).toBe("protocol_error");
    expect(new PythonError("InternalError", "RuntimeError: boom", []).code).toBe("internal_error");
  });

  it("names the size, the limit and the direction of a message too large", () => {
    const e = new MessageTooLargeError("reply", 8_388_700, 1_048_576, "the result of bytes_out takes 8388700 bytes, more than max_message_bytes (1048576)");
    expect(e.code).toBe(ErrorCode.messageTooLarge);
    expect(e.context).toMatchObject({ direction: "reply", bytes: 8_388_700, limit: 1_048_576 });
    expect(JSON.parse(JSON.stringify(e)).hint).toMatch(/maxMessageBytes/);
  });

  it("serialises to JSON with cause, context and subclass fields", () => {
    const inner = new ValidationError("options.address", "invalid", { allowed: ["ipc", "tcp"] });
    const e = new RuntimeExitedError(3, null, ["boom"], { cause: inner });
    const j = JSON.parse(JSON.stringify(e)) as Record<string, unknown>;
    expect(j.code).toBe("runtime_exited");
    expect(j.exitCode).toBe(3);
    expect(j.stderrTail).toEqual(["boom"]);
    expect((j.cause as Record<string, unknown>).code).toBe("invalid_config");
    expect(e.message).toContain("boom");
    expect(e).toBeInstanceOf(NearposError);
    expect(e.name).toBe("RuntimeExitedError");
  });

  it("names the field and allowed values", () => {
    const e = new ValidationError("params.sampler", "must be one of", { allowed: ["a", "b"] });
    expect(e.message).toContain("params.sampler");
    expect(e.message).toContain('"a", "b"');
    expect(e.context.allowed).toEqual(["a", "b"]);
  });

  it("lists known methods", () => {
    const e = new UnknownMethodError("ecko", ["echo", "sleep"]);
    expect(e.code).toBe("unknown_method");
    expect(e.message).toContain("echo, sleep");
  });
});
