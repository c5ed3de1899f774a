import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { motoAvailable } from "../../../../../sandbox/fakes/aws/moto";
import { ROOT } from "../../../../support/cloudformation";

/**
 * The moto launcher changes how moto's SQS reads the clock, nothing else: the same clock, the
 * same conversions of a given datetime, and only on the moto version it was written against.
 */
const LAUNCHER_DIR = join(ROOT, "sandbox/fakes/aws");
const probe = `
import datetime, json
import moto.core.utils as core
import moto.sqs.models as sqs
original = (sqs.unix_time, sqs.unix_time_millis)
import importlib.util
spec = importlib.util.spec_from_file_location("launcher", ${JSON.stringify(join(LAUNCHER_DIR, "moto-server.py"))})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
import moto
dt = datetime.datetime(2026, 12, 1, 12, 0, 0, 250000)
print(json.dumps({
  "version": moto.__version__,
  "patched": sqs.unix_time is not original[0] and sqs.unix_time_millis is not original[1],
  "skewMs": abs(sqs.unix_time_millis() - core.unix_time_millis()),
  "secondsAgree": abs(sqs.unix_time() - core.unix_time()) < 1,
  "datetime": [sqs.unix_time(dt), core.unix_time(dt), sqs.unix_time_millis(dt), core.unix_time_millis(dt)],
}))
`;

describe("sandbox/fakes/aws/moto-server.py", () => {
  it("reads the same clock as moto does, converts a given datetime as moto does, on moto 5.2.1 only", () => {
    if (!motoAvailable()) throw new Error('moto is not installed for python3: pip install "moto[server]"');
    const out = JSON.parse(execFileSync("python3", ["-c", probe], { encoding: "utf8", timeout: 60_000 })) as {
      version: string;
      patched: boolean;
      skewMs: number;
      secondsAgree: boolean;
      datetime: number[];
    };
    expect(out.patched).toBe(out.version === "5.2.1");
    expect(out.skewMs).toBeLessThan(1_000);
    expect(out.secondsAgree).toBe(true);
    const [ours, theirs, oursMs, theirsMs] = out.datetime;
    expect(ours).toBe(theirs);
    expect(oursMs).toBe(theirsMs);
  });
});
