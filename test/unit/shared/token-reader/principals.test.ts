import { describe, expect, it } from "vitest";
import { authorize, parseAllowedPrincipals } from "../../../../shared/token-reader/principals";

describe("allowed principals", () => {
  const allowed = parseAllowedPrincipals(
    "ALLOWED_PRINCIPALS",
    "111111111111, arn:aws:iam::222222222222:role/ci/agent-reader,arn:aws:iam::333333333333:role/Boot",
  );

  it("takes a role path of any printable ASCII and refuses unknown partitions (CreateRole's Path)", () => {
    const roles = parseAllowedPrincipals(
      "ALLOWED_PRINCIPALS",
      "arn:aws:iam::222222222222:role/team!1/r",
    ).roles;
    expect(roles.map((r) => [r.partition, r.account, r.name])).toEqual([["aws", "222222222222", "r"]]);
    expect(() => parseAllowedPrincipals("ALLOWED_PRINCIPALS", "arn:awsx:iam::222222222222:role/r")).toThrow(
      /neither a 12-digit account id nor an IAM role ARN/,
    );
  });

  it("parses accounts and roles (path ignored for matching)", () => {
    expect([...allowed.accounts]).toEqual(["111111111111"]);
    expect(allowed.roles.map((r) => [r.account, r.name])).toEqual([
      ["222222222222", "agent-reader"],
      ["333333333333", "Boot"],
    ]);
  });

  it.each([
    [{ accountId: "111111111111", userArn: "arn:aws:iam::111111111111:user/alice" }, true],
    [{ accountId: "111111111111", userArn: "arn:aws:sts::111111111111:assumed-role/anything/s" }, true],
    [
      { accountId: "222222222222", userArn: "arn:aws:sts::222222222222:assumed-role/agent-reader/i-0abc" },
      true,
    ],
    [{ accountId: "333333333333", userArn: "arn:aws:sts::333333333333:assumed-role/boot/i-0abc" }, true],
    [{ accountId: "222222222222", userArn: "arn:aws:sts::222222222222:assumed-role/other-role/s" }, false],
    [{ accountId: "444444444444", userArn: "arn:aws:sts::444444444444:assumed-role/agent-reader/s" }, false],
    [{ accountId: "222222222222", userArn: "arn:aws:iam::222222222222:user/agent-reader" }, false],
    [
      { accountId: "222222222222", userArn: "arn:aws-cn:sts::222222222222:assumed-role/agent-reader/s" },
      false,
    ],
    [{ accountId: "444444444444", userArn: "arn:aws:sts::111111111111:assumed-role/x/s" }, false],
    // No such partition: not an IAM or STS ARN, whatever the account says.
    [{ accountId: "111111111111", userArn: "arn:awsx:iam::111111111111:user/alice" }, false],
    [{ accountId: "111111111111" }, true],
    [{}, false],
    [undefined, false],
  ])("%o → %s", (caller, expected) => {
    expect(authorize(allowed, caller).allowed).toBe(expected);
  });
});
