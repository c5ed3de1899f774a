import { type Arn, isAccountId, type Partition, parseRoleArn, parseServiceArn } from "../lib/arn";
import { ConfigError } from "../lib/errors";

/**
 * Who may fetch the token from the read-token Lambda: whole accounts (12-digit ids) and IAM roles
 * (`arn:aws:iam::123456789012:role/[path/]name`). A caller arrives as an assumed-role session,
 * `arn:aws:sts::123456789012:assumed-role/name/session`, which carries the role's name but not its
 * path, so a role matches on partition, account and name (IAM role names are unique per account,
 * case-insensitively).
 */

export interface AllowedRole {
  arn: string;
  partition: Partition;
  account: string;
  name: string;
}

export interface AllowedPrincipals {
  accounts: ReadonlySet<string>;
  roles: readonly AllowedRole[];
}

/** What a function URL with AWS_IAM auth tells us in requestContext.authorizer.iam. */
export interface CallerIdentity {
  accountId?: string | undefined;
  userArn?: string | undefined;
  userId?: string | undefined;
  callerId?: string | undefined;
  principalOrgId?: string | undefined;
}

export function parseAllowedPrincipals(variable: string, raw: string): AllowedPrincipals {
  const accounts = new Set<string>();
  const roles: AllowedRole[] = [];
  const items = raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) {
    if (isAccountId(item)) {
      accounts.add(item);
      continue;
    }
    const role = parseRoleArn(item);
    if (!role) {
      throw new ConfigError(
        variable,
        `"${item}" is neither a 12-digit account id nor an IAM role ARN (arn:aws:iam::123456789012:role/name)`,
      );
    }
    roles.push({ arn: item, partition: role.partition, account: role.account, name: role.name });
  }
  if (accounts.size === 0 && roles.length === 0) {
    throw new ConfigError(variable, "must name at least one account id or IAM role ARN");
  }
  return { accounts, roles };
}

export interface Decision {
  allowed: boolean;
  /** Why, for the log: "account 123…", "role name in 123…", or what did not match. */
  reason: string;
}

/** An IAM user or role, or an STS assumed-role session: global (no region), with an account. */
function callerArn(value: string): Arn | undefined {
  return parseServiceArn(value, "iam", false) ?? parseServiceArn(value, "sts", false);
}

export function authorize(allowed: AllowedPrincipals, caller: CallerIdentity | undefined): Decision {
  if (!caller || (!caller.accountId && !caller.userArn)) {
    return { allowed: false, reason: "no IAM caller identity in the request (is the function URL AWS_IAM?)" };
  }
  const parsed = caller.userArn ? callerArn(caller.userArn) : undefined;
  if (caller.userArn && !parsed) return { allowed: false, reason: "caller ARN is not an IAM or STS ARN" };
  const { partition = "", service = "", account: arnAccount = "", resource = "" } = parsed ?? {};
  const account = arnAccount || caller.accountId || "";
  if (caller.accountId && arnAccount && caller.accountId !== arnAccount) {
    return { allowed: false, reason: "caller account id and ARN disagree" };
  }
  if (!isAccountId(account)) return { allowed: false, reason: "caller account id is malformed" };
  if (allowed.accounts.has(account)) return { allowed: true, reason: `account ${account} is allowed` };

  if (service === "sts" && resource.startsWith("assumed-role/")) {
    const roleName = resource.split("/")[1] ?? "";
    const role = allowed.roles.find(
      (r) =>
        r.partition === partition && r.account === account && r.name.toLowerCase() === roleName.toLowerCase(),
    );
    if (role) return { allowed: true, reason: `role ${role.arn} is allowed` };
  }
  return { allowed: false, reason: "caller matches no allowed account or role" };
}
