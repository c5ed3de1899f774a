import { describe, expect, it } from "vitest";
import type { Ec2InstanceView } from "../../../../../sandbox/fakes/autoscaling/types";
import { describeInstances } from "../../../../../sandbox/fakes/ec2/describe-instances";
import { Ec2Error } from "../../../../../sandbox/fakes/ec2/errors";
import { Ec2Params } from "../../../../../sandbox/fakes/ec2/params";

function instance(n: number, extra: Partial<Ec2InstanceView> = {}): Ec2InstanceView {
  return {
    instanceId: `i-${n.toString(16).padStart(17, "0")}`,
    region: "us-east-1",
    availabilityZone: "us-east-1a",
    launchTime: new Date(1_000 * n),
    state: "running",
    platform: "Linux",
    launchTemplateVersion: "1",
    tags: [{ key: "aws:autoscaling:groupName", value: n % 2 === 0 ? "even" : "odd" }],
    ...extra,
  };
}

const source = { ec2Instances: () => Array.from({ length: 12 }, (_, i) => instance(i + 1)) };
const params = (query: string) => Ec2Params.parse(query);
type Page = { reservationSet: Array<{ instancesSet: Array<{ instanceId: string }> }>; nextToken?: string };
const ids = (page: unknown) =>
  (page as Page).reservationSet.flatMap((r) => r.instancesSet.map((i) => i.instanceId));

describe("describeInstances", () => {
  it("pages by MaxResults until no NextToken, covering every instance once", () => {
    const seen: string[] = [];
    let token: string | undefined;
    for (let round = 0; round < 5; round++) {
      const page = describeInstances(
        source,
        "us-east-1",
        params(`MaxResults=5${token ? `&NextToken=${token}` : ""}`),
      ) as Page;
      seen.push(...ids(page));
      token = page.nextToken;
      if (token === undefined) break;
    }
    expect(seen).toHaveLength(12);
    expect(new Set(seen).size).toBe(12);
    expect(token).toBeUndefined();
  });

  it("without MaxResults returns everything and no token", () => {
    const page = describeInstances(source, "us-east-1", params("")) as Page;
    expect(ids(page)).toHaveLength(12);
    expect(page.nextToken).toBeUndefined();
  });

  it("ANDs filters and ORs values", () => {
    const page = describeInstances(
      source,
      "us-east-1",
      params(
        "Filter.1.Name=tag%3Aaws%3Aautoscaling%3AgroupName&Filter.1.Value.1=even&Filter.2.Name=instance-id" +
          `&Filter.2.Value.1=${instance(2).instanceId}&Filter.2.Value.2=${instance(3).instanceId}`,
      ),
    );
    expect(ids(page)).toEqual([instance(2).instanceId]);
  });

  it("refuses what AWS refuses", () => {
    const codeOf = (query: string) => {
      try {
        describeInstances(source, "us-east-1", params(query));
        return "none";
      } catch (error) {
        return error instanceof Ec2Error ? error.code : "other";
      }
    };
    expect(codeOf("MaxResults=4")).toBe("InvalidParameterValue");
    expect(codeOf(`MaxResults=5&InstanceId.1=${instance(1).instanceId}`)).toBe("InvalidParameterCombination");
    expect(codeOf("InstanceId.1=i-0fffffffffffffff0")).toBe("InvalidInstanceID.NotFound");
    expect(codeOf("InstanceId.1=bogus")).toBe("InvalidInstanceID.Malformed");
    expect(codeOf("Filter.1.Name=owner-id&Filter.1.Value.1=x")).toBe("InvalidParameterValue");
    const token = (describeInstances(source, "us-east-1", params("MaxResults=5")) as Page).nextToken;
    expect(codeOf(`MaxResults=5&NextToken=${token}`)).toBe("none");
    expect(() => describeInstances(source, "eu-west-1", params(`MaxResults=5&NextToken=${token}`))).toThrow(
      Ec2Error,
    );
  });
});
