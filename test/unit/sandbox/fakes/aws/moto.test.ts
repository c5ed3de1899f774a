import { describe, expect, it } from "vitest";
import { boundPort } from "../../../../../sandbox/fakes/aws/moto";

describe("boundPort: the port moto server reports once it has bound -p 0", () => {
  it.each<[string, string, number | undefined]>([
    [
      "werkzeug's start-up lines",
      "WARNING: This is a development server.\n * Running on http://127.0.0.1:45233\nPress CTRL+C to quit\n",
      45233,
    ],
    ["not bound yet", "WARNING: This is a development server.\n", undefined],
    ["another host", " * Running on http://0.0.0.0:5000\n", undefined],
    ["port 0 (not a bound port)", " * Running on http://127.0.0.1:0\n", undefined],
    ["out of range", " * Running on http://127.0.0.1:70000\n", undefined],
    ["a longer number is not cut to a port", " * Running on http://127.0.0.1:123456\n", undefined],
  ])("%s", (_, stderr, port) => {
    expect(boundPort(stderr)).toBe(port);
  });
});
