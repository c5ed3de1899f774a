/**
 * `npm run bench`: every performance figure of the project, measured side by side in one run and
 * printed as ratios. Nothing here asserts; targets are printed next to the numbers.
 */

import { benchBundles } from "./bench/bundles";
import { benchCli } from "./bench/cli";
import { benchRollout } from "./bench/rollout";
import { benchScale } from "./bench/scale";
import { benchStrategies } from "./bench/strategies";
import { benchTokenReader } from "./bench-token-reader";

const only = process.argv.slice(2).filter((a) => a !== "--");
// Words like `16x256` select sizes within the scale section; they name no section themselves.
const sections = only.filter((a) => !/^\d+x\d+$/.test(a));
const want = (section: string) => sections.length === 0 || sections.includes(section);

if (want("bundles")) {
  console.log(
    "\n## Bundles: size and cold import vs. a bundle of only the SDK clients each function uses (target ≤ 1.15)",
  );
  console.table(await benchBundles());
}

if (want("cli")) {
  console.log(
    "\n## CLI cold start to print a token: eager bundle vs lazy operator commands, one file vs split (moto on loopback)",
  );
  console.table(await benchCli());
}

if (want("rollout")) {
  console.log(
    "\n## Rollout on the local stack (real bundles): promotion → revocation vs R + F (target ≤ R + F + 2 s)",
  );
  const { latency, scale } = await benchRollout();
  console.table(latency);
  console.log("\n## Rollout wall time, 1 region × 1 group vs 16 regions × 4 groups (target ratio ≤ 1.5)");
  console.table(scale);
}

if (want("strategies")) {
  console.log(
    "\n## In-place vs refresh on the same stock Elastic CI Stack fleet (targets: in-place ≤ R + C + 2 s, refresh ≤ R + F + 2 s; in-place replaces nothing and interrupts nothing)",
  );
  console.table(await benchStrategies());
}

if (want("scale")) {
  console.log(
    "\n## Cost per rotation against fleet size (issue 11): reconcile runs, AWS and Buildkite calls, event waits (real bundles)",
  );
  await benchScale(only);
}

if (want("token-reader")) {
  console.log("\n## Token reader vs Powertools Parameters getSecret (moto on loopback)");
  // It prints its own table; the returned figures are for callers that want them as data.
  await benchTokenReader();
}
