/**
 * The body of one function container on its own thread (worker-handler.ts says why). Plain
 * JavaScript so that it runs under any loader: it imports a built bundle, never TypeScript.
 *
 * workerData: { bundle: file URL of the bundle, factory: the name of its handler factory }.
 * Messages in:  { id, event, deadline, functionName, awsRequestId }.
 * Messages out: { id, ok: true, result } or { id, ok: false, error }, where `error` is what
 * runtime-error.ts needs of the thrown value: an Error's name, message and stack, or for anything
 * else its type and text.
 */
import { parentPort, workerData } from "node:worker_threads";

const { bundle, factory } = workerData;
// The factory is called once: one container, its dependencies built once, like a Lambda instance.
const handler = import(bundle).then((mod) => {
  const create = mod[factory];
  if (typeof create !== "function") throw new Error(`${bundle} exports no ${factory}`);
  return create();
});

/**
 * What of a thrown value crosses the thread (an Error's own class does not survive a structured
 * clone): an Error's name, message and stack; for anything else its type, its text and, for an
 * object, whichever of those three fields it has as strings, for the report's rule to judge.
 */
function describeThrown(error) {
  if (error instanceof Error)
    return { isError: true, name: error.name, message: error.message, stack: error.stack };
  const fields = {};
  if (typeof error === "object" && error !== null)
    for (const key of ["name", "message", "stack"])
      if (typeof error[key] === "string") fields[key] = error[key];
  return { isError: false, type: typeof error, text: String(error), fields };
}

parentPort.on("message", async (message) => {
  const { id, event, deadline, functionName, awsRequestId } = message;
  const context = {
    functionName,
    awsRequestId,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  try {
    const result = await (await handler)(event, context);
    parentPort.postMessage({ id, ok: true, result });
  } catch (error) {
    let described;
    try {
      described = describeThrown(error);
    } catch {
      described = { isError: false, type: "object", text: "[unreadable thrown value]" };
    }
    parentPort.postMessage({ id, ok: false, error: described });
  }
});
