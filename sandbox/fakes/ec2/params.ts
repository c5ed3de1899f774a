/**
 * Reads EC2 Query-protocol parameters. Unlike the awsQuery services, EC2 flattens lists without
 * `.member`: `InstanceId.1`, `Filter.1.Name`, `Filter.1.Value.2` (as @aws-sdk/client-ec2 sends them).
 */
import { Ec2Error } from "./errors";

export class Ec2Params {
  readonly #values: ReadonlyMap<string, string>;

  private constructor(values: ReadonlyMap<string, string>) {
    this.#values = values;
  }

  static parse(body: string): Ec2Params {
    return new Ec2Params(new Map(new URLSearchParams(body)));
  }

  string(name: string): string | undefined {
    return this.#values.get(name);
  }

  integer(name: string): number | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    if (!/^-?\d+$/.test(value)) {
      throw new Ec2Error("InvalidParameterValue", `Value (${value}) for parameter ${name} is invalid.`);
    }
    return Number(value);
  }

  /** `Name.1`, `Name.2`, … in index order. */
  list(name: string): string[] {
    return this.#indexes(`${name}.`).map((index) => this.string(`${name}.${index}`) ?? "");
  }

  filters(): Array<{ name: string; values: string[] }> {
    return this.#indexes("Filter.").map((index) => {
      const name = this.string(`Filter.${index}.Name`);
      if (name === undefined) throw new Ec2Error("InvalidParameterValue", `Filter ${index} has no Name.`);
      return { name, values: this.list(`Filter.${index}.Value`) };
    });
  }

  #indexes(prefix: string): number[] {
    const indexes = new Set<number>();
    for (const key of this.#values.keys()) {
      if (!key.startsWith(prefix)) continue;
      const match = /^(\d+)(?:\.|$)/.exec(key.slice(prefix.length));
      if (match?.[1] !== undefined) indexes.add(Number(match[1]));
    }
    return [...indexes].sort((a, b) => a - b);
  }
}
