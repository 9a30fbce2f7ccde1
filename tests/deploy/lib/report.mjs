// Report: collects named checks, prints one line per failure (and a summary), and exits
// non-zero when any failed, so each script is one honest ctest test.
//
//   const r = new Report("deploy manifests (dev)");
//   r.check(replicas === 1, "Deployment/fcp-coordinator: replicas is 1");
//   r.finish();
export class Report {
  constructor(title) {
    this.title = title;
    this.passed = 0;
    this.failures = [];
  }

  // Records one check: `ok` truthy passes; `what` says what was required.
  check(ok, what) {
    if (ok) {
      this.passed += 1;
    } else {
      this.failures.push(what);
      console.log(`FAIL ${what}`);
    }
    return Boolean(ok);
  }

  fail(what) {
    return this.check(false, what);
  }

  // Prints the summary and exits: 0 when every check passed and there was at least one.
  finish() {
    const total = this.passed + this.failures.length;
    console.log(`${this.title}: ${this.passed} passed, ${this.failures.length} failed`);
    if (total === 0) {
      console.log(`${this.title}: no check ran`);
      process.exit(1);
    }
    process.exit(this.failures.length === 0 ? 0 : 1);
  }
}

// Parses "--name=value" / "--name value" command-line flags of `args` into a Map (dashes in
// names become underscores, as the fcp binaries accept both).
export function parseFlags(args) {
  const flags = new Map();
  for (let i = 0; i < args.length; i++) {
    const a = String(args[i]);
    if (!a.startsWith("--")) continue;
    const eq = a.indexOf("=");
    const name = (eq < 0 ? a.slice(2) : a.slice(2, eq)).replaceAll("-", "_");
    if (eq >= 0) {
      flags.set(name, a.slice(eq + 1));
    } else if (i + 1 < args.length && !String(args[i + 1]).startsWith("--")) {
      flags.set(name, String(args[++i]));
    } else {
      flags.set(name, "true");
    }
  }
  return flags;
}
