/**
 * Reads AWS Query request parameters. The SDK flattens structures with dots and lists with
 * `.member.N` (1-based), e.g. `Filters.member.1.Values.member.2`, and sends an empty list as the
 * bare name with an empty value (`AutoScalingGroupNames=`). A `QueryParams` is a view of the
 * parameters under one prefix, so nested structures read like top-level ones.
 */
import { validationError } from "./errors";

export class QueryParams {
  readonly #values: ReadonlyMap<string, string>;
  readonly #prefix: string;

  private constructor(values: ReadonlyMap<string, string>, prefix: string) {
    this.#values = values;
    this.#prefix = prefix;
  }

  /** Parses an `application/x-www-form-urlencoded` body. */
  static parse(body: string): QueryParams {
    return new QueryParams(new Map(new URLSearchParams(body)), "");
  }

  string(name: string): string | undefined {
    return this.#values.get(this.#prefix + name);
  }

  requiredString(name: string): string {
    const value = this.string(name);
    if (value === undefined) {
      throw validationError(
        `1 validation error detected: Value null at '${this.#path(name)}' failed to satisfy constraint: ` +
          "Member must not be null",
      );
    }
    return value;
  }

  integer(name: string): number | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    if (!/^-?\d+$/.test(value)) throw this.#malformed(name, value, "an integer");
    return Number(value);
  }

  boolean(name: string): boolean | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    if (value !== "true" && value !== "false") throw this.#malformed(name, value, "a boolean");
    return value === "true";
  }

  /** A list of strings (`Name.member.N`); undefined when the list was not sent at all. */
  strings(name: string): string[] | undefined {
    const indexes = this.#memberIndexes(name);
    if (indexes.length === 0) return this.string(name) === undefined ? undefined : [];
    return indexes.map((index) => this.string(`${name}.member.${index}`) ?? "");
  }

  /** A list of structures (`Name.member.N.Field`); undefined when the list was not sent at all. */
  structs(name: string): QueryParams[] | undefined {
    const indexes = this.#memberIndexes(name);
    if (indexes.length === 0) return this.string(name) === undefined ? undefined : [];
    return indexes.map((index) => new QueryParams(this.#values, `${this.#prefix}${name}.member.${index}.`));
  }

  /** A nested structure (`Name.Field`); undefined when none of its fields were sent. */
  struct(name: string): QueryParams | undefined {
    const prefix = `${this.#prefix}${name}.`;
    for (const key of this.#values.keys()) {
      if (key.startsWith(prefix)) return new QueryParams(this.#values, prefix);
    }
    return undefined;
  }

  /** Sorted distinct N of every `Name.member.N...` key. */
  #memberIndexes(name: string): number[] {
    const prefix = `${this.#prefix}${name}.member.`;
    const indexes = new Set<number>();
    for (const key of this.#values.keys()) {
      if (!key.startsWith(prefix)) continue;
      const match = /^(\d+)(?:\.|$)/.exec(key.slice(prefix.length));
      if (match?.[1] !== undefined) indexes.add(Number(match[1]));
    }
    return [...indexes].sort((a, b) => a - b);
  }

  /** AWS names parameters in messages by their lowerCamel path, e.g. `preferences.minHealthyPercentage`. */
  #path(name: string): string {
    return `${this.#prefix}${name}`
      .split(".")
      .map((part) => part.charAt(0).toLowerCase() + part.slice(1))
      .join(".");
  }

  #malformed(name: string, value: string, expected: string) {
    return validationError(
      `Value '${value}' at '${this.#path(name)}' failed to satisfy constraint: Member must be ${expected}`,
    );
  }
}
