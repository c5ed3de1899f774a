import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { motoAvailable } from "../../../../../sandbox/fakes/aws/moto";
import { ROOT } from "../../../../support/cloudformation";

/**
 * The moto launcher changes what moto's SQS and its request dispatch cost, nothing they answer: the
 * same clock and conversions of a given datetime, long polls that end and deliver as before
 * without spinning, the same backend for every host, and only on the moto version it was written
 * against.
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

/** Long polls on a FIFO queue whose one message group has a message in flight, in-process (mock_aws). */
const longPolls = `
import json, threading, time, boto3, importlib.util
spec = importlib.util.spec_from_file_location("launcher", ${JSON.stringify(join(LAUNCHER_DIR, "moto-server.py"))})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
from moto import mock_aws
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import create_backend_app
out = {}
with mock_aws():
    c = boto3.client("sqs", region_name="us-east-1")
    q = c.create_queue(QueueName="t.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    for i in range(200):
        c.send_message(QueueUrl=q, MessageBody=f"m{i}", MessageGroupId="g")
    held = c.receive_message(QueueUrl=q, MaxNumberOfMessages=1)["Messages"]
    # 1. Nothing deliverable: the poll lasts its WaitTimeSeconds, returns nothing, and does not spin.
    cpu, wall = time.process_time(), time.time()
    r = c.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=2)
    out["idle"] = {"got": len(r.get("Messages", [])), "wallS": time.time() - wall, "cpuS": time.process_time() - cpu}
    # 2. Another group's message sent during the poll is delivered before the poll's end.
    threading.Timer(0.3, lambda: c.send_message(QueueUrl=q, MessageBody="other", MessageGroupId="h")).start()
    wall = time.time()
    r = c.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=5)
    out["added"] = {"bodies": [m["Body"] for m in r.get("Messages", [])], "wallS": time.time() - wall}
    c.delete_message(QueueUrl=q, ReceiptHandle=r["Messages"][0]["ReceiptHandle"])
    # 3. The held message deleted: the next poll delivers its group's next message at once. (Deleted
    # during a poll, moto as shipped delivers it only to the next poll: the poll keeps the groups in
    # flight as they were when it began. Unchanged here.)
    c.delete_message(QueueUrl=q, ReceiptHandle=held[0]["ReceiptHandle"])
    wall = time.time()
    r = c.receive_message(QueueUrl=q, MaxNumberOfMessages=1, WaitTimeSeconds=5)
    out["unblocked"] = {"bodies": [m["Body"] for m in r.get("Messages", [])], "wallS": time.time() - wall}
app = DomainDispatcherApplication(create_backend_app)
hosts = ["sqs.us-east-1.amazonaws.com", "secretsmanager.eu-west-1.amazonaws.com", "sns.ap-south-1.amazonaws.com", "moto_api", None]
out["hosts"] = [[app.get_backend_for_host(h), app.get_backend_for_host(h), mod._original_get_backend_for_host(app, h)] for h in hosts]
print(json.dumps(out))
`;

/** Queue attributes through the launcher against moto's own property, and what one send costs in visibility checks. */
const queueAttributes = `
import json, importlib.util
import moto.sqs.models as sqs
shipped = sqs.Queue.attributes
spec = importlib.util.spec_from_file_location("launcher", ${JSON.stringify(join(LAUNCHER_DIR, "moto-server.py"))})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
from moto.sqs.models import sqs_backends
b = sqs_backends["123456789012"]["eu-west-1"]
b.create_queue("dlq")
fifo = b.create_queue("a.fifo", FifoQueue="true", ContentBasedDeduplication="false")
plain = b.create_queue("b", Policy='{"Version":"2012-10-17","Statement":[]}', KmsMasterKeyId="alias/k",
    RedrivePolicy=json.dumps({"deadLetterTargetArn": "arn:aws:sqs:eu-west-1:123456789012:dlq", "maxReceiveCount": 3}))
for i in range(100):
    b.send_message("a.fifo", f"m{i}", group_id="g", deduplication_id=f"d{i}")
b.send_message("a.fifo", "again", group_id="g", deduplication_id="d7")
checks = {"n": 0}
visible = sqs.Message.visible
def counted(self):
    checks["n"] += 1
    return visible.fget(self)
sqs.Message.visible = property(counted)
b.send_message("a.fifo", "one more", group_id="g", deduplication_id="d-new")
sqs.Message.visible = visible
queues = [fifo, plain]
print(json.dumps({
  "version": __import__("moto").__version__,
  "same": [[list(q.attributes.items()), list(shipped.fget(q).items())] for q in queues],
  "all": [[b.get_queue_attributes(q.name, ["All"]), shipped.fget(q), type(b.get_queue_attributes(q.name, ["All"])).__name__] for q in queues],
  "one": b.get_queue_attributes("a.fifo", ["ApproximateNumberOfMessages", "ContentBasedDeduplication"]),
  "visibilityChecksPerSend": checks["n"],
}))
`;

/** VisibilityTimeout 0 on a clock that reads the same value twice (frozen here), as moto does it and as the launcher does. */
const visibilityZero = `
import json, importlib.util
import moto.sqs.models as sqs
shipped = sqs.Message.change_visibility
spec = importlib.util.spec_from_file_location("launcher", ${JSON.stringify(join(LAUNCHER_DIR, "moto-server.py"))})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
from moto.sqs.models import sqs_backends
sqs.unix_time_millis = lambda dt=None: 1_796_000_000_000.0
b = sqs_backends["123456789012"]["eu-west-1"]
b.create_queue("v.fifo", FifoQueue="true", ContentBasedDeduplication="true")
out = {"version": __import__("moto").__version__}
for name, change in (("shipped", shipped), ("launcher", sqs.Message.change_visibility)):
    sqs.Message.change_visibility = change
    b.send_message("v.fifo", name, group_id=name)
    [m] = b.receive_message("v.fifo", 1, 0, 30)
    b.change_message_visibility("v.fifo", m.receipt_handle, 0)
    q = b.get_queue("v.fifo")
    out[name] = {"inFlight": any(p.body == name for p in q.pending_messages), "delivered": [x.body for x in b.receive_message("v.fifo", 10, 0, 30)]}
    sqs.Message.change_visibility = mod._change_visibility
print(json.dumps(out))
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

  it("a FIFO long poll behind an in-flight group waits without spinning and still delivers what becomes deliverable", () => {
    if (!motoAvailable()) throw new Error('moto is not installed for python3: pip install "moto[server]"');
    const out = JSON.parse(
      execFileSync("python3", ["-c", longPolls], { encoding: "utf8", timeout: 60_000 }),
    ) as {
      idle: { got: number; wallS: number; cpuS: number };
      added: { bodies: string[]; wallS: number };
      unblocked: { bodies: string[]; wallS: number };
      hosts: Array<[unknown, unknown, unknown]>;
    };
    expect(out.idle.got).toBe(0);
    expect(out.idle.wallS).toBeGreaterThanOrEqual(1.9);
    // As shipped, moto rescans the queue for the whole 2 s wait (about 2 s of CPU); patched, a rescan per 20 ms.
    expect(out.idle.cpuS).toBeLessThan(1);
    expect(out.added.bodies).toEqual(["other"]);
    expect(out.added.wallS).toBeLessThan(4);
    expect(out.unblocked.bodies).toEqual(["m1"]);
    expect(out.unblocked.wallS).toBeLessThan(1);
    for (const [first, again, original] of out.hosts) {
      expect(first).toEqual(original);
      expect(again).toEqual(original);
    }
  });

  it("gives a queue's attributes as moto computes them, without scanning the queue on every send", () => {
    if (!motoAvailable()) throw new Error('moto is not installed for python3: pip install "moto[server]"');
    const out = JSON.parse(
      execFileSync("python3", ["-c", queueAttributes], { encoding: "utf8", timeout: 60_000 }),
    ) as {
      version: string;
      same: Array<[unknown, unknown]>;
      all: Array<[unknown, unknown, string]>;
      one: Record<string, unknown>;
      visibilityChecksPerSend: number;
    };
    for (const [ours, theirs] of out.same) expect(ours).toEqual(theirs);
    for (const [ours, theirs, type] of out.all) {
      expect(ours).toEqual(theirs);
      expect(type).toBe("dict");
    }
    // 101 messages sent, and the duplicate (MessageDeduplicationId d7) dropped as moto does.
    expect(out.one).toEqual({ ApproximateNumberOfMessages: 101, ContentBasedDeduplication: "false" });
    // As shipped, a FIFO send reads the attributes four times, each a scan of every message.
    if (out.version === "5.2.1") expect(out.visibilityChecksPerSend).toBe(0);
    else expect(out.visibilityChecksPerSend).toBeGreaterThan(100);
  });

  it("makes a message visible at once on VisibilityTimeout 0, where moto kept it in flight when the clock read the same twice", () => {
    if (!motoAvailable()) throw new Error('moto is not installed for python3: pip install "moto[server]"');
    const out = JSON.parse(
      execFileSync("python3", ["-c", visibilityZero], { encoding: "utf8", timeout: 60_000 }),
    ) as Record<string, { inFlight: boolean; delivered: string[] } | string>;
    if (out.version !== "5.2.1") return;
    expect(out.shipped).toEqual({ inFlight: true, delivered: [] });
    expect(out.launcher).toEqual({ inFlight: false, delivered: ["launcher"] });
  });
});
