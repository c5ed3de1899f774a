import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type {
  InstanceDirectory,
  InstanceHost,
  Platform,
  SsmAgentState,
} from "../../sandbox/fakes/instances/instance-host";

/**
 * A small InstanceDirectory for tests of the Run Command stand-in: instances whose cfg is a temp
 * file and whose state (running, SSM agent, boot) a test flips directly.
 */
export class FakeInstance implements InstanceHost {
  isRunning = true;
  agent: SsmAgentState = "online";
  booted = true;

  constructor(
    readonly instanceId: string,
    readonly region: string,
    readonly platform: Platform,
    readonly configPath: string,
  ) {}

  running(): boolean {
    return this.isRunning;
  }
  ssmAgent(): SsmAgentState {
    return this.agent;
  }
  bootFinished(): boolean {
    return this.booted;
  }
}

export class FakeDirectory implements InstanceDirectory {
  readonly root = mkdtempSync(join(tmpdir(), "fake-fleet-"));
  private readonly hosts: FakeInstance[] = [];
  private next = 0;

  /** Adds an instance; `cfg` (when given) is written to its cfg file. */
  add(options: { region?: string; platform?: Platform; cfg?: string | Buffer } = {}): FakeInstance {
    const id = `i-${(0x0a000000 + this.next++).toString(16).padStart(17, "0")}`;
    const configPath = join(this.root, id, "buildkite-agent.cfg");
    mkdirSync(join(this.root, id), { recursive: true });
    if (options.cfg !== undefined) writeFileSync(configPath, options.cfg);
    const host = new FakeInstance(id, options.region ?? "us-east-1", options.platform ?? "Linux", configPath);
    this.hosts.push(host);
    return host;
  }

  find(region: string, instanceId: string): InstanceHost | undefined {
    return this.hosts.find((h) => h.region === region && h.instanceId === instanceId);
  }

  list(region: string): InstanceHost[] {
    return this.hosts.filter((h) => h.region === region && h.isRunning);
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
