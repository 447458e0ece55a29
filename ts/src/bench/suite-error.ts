/**
 * The error of a suite file: it names the file and the JSON path of each problem (and, for a
 * value that comes from a base the suite extends, that base file).
 * @internal
 */

/** One problem in a suite. */
export interface SuiteIssue {
  /** JSON path, e.g. `$.losses[0].baseline`. */
  path: string;
  message: string;
  /** The file that holds `path` when it is not the suite's own file (a base it extends). */
  file?: string;
}

/** Error in a suite file or its expansion: names the file and the JSON path of each problem. */
export class SuiteError extends Error {
  override readonly name = "SuiteError";
  readonly code = "invalid_suite";
  constructor(
    readonly file: string,
    readonly issues: readonly SuiteIssue[],
  ) {
    super(`${file}: ${issues.map(issueLine).join("; ")}`);
  }
}

/** `path: message`, prefixed by the file that holds the path when it is a base file. */
export function issueLine(i: SuiteIssue): string {
  return `${i.file ? `${i.file}: ` : ""}${i.path}: ${i.message}`;
}

/** Renders a path as JSON path: $.losses[0].baseline */
export function jsonPath(path: readonly PropertyKey[]): string {
  let out = "$";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : /^[A-Za-z_$][\w$@-]*$/.test(String(p)) ? `.${String(p)}` : `[${JSON.stringify(String(p))}]`;
  return out;
}
