/**
 * `npm run bench`: every performance figure of the project, measured side by side in one run and
 * printed as ratios. Nothing here asserts; targets are printed next to the numbers.
 */
import { benchBundles } from "./bench/bundles";

const only = process.argv.slice(2);
const want = (section: string) => only.length === 0 || only.includes(section);

if (want("bundles")) {
  console.log(
    "\n## Bundles: size and cold import vs. a bundle of only the SDK clients each function uses (target ≤ 1.15)",
  );
  console.table(await benchBundles());
}
