import { InvokeCommand } from "@aws-sdk/client-lambda";
import { lambdaClients } from "./lambda";

const clients = lambdaClients();

/** Fire-and-forget invocation (InvocationType Event): Lambda queues it and retries on its own. */
export async function invokeAsync(region: string, functionName: string, payload: unknown): Promise<void> {
  await clients(region).send(
    new InvokeCommand({
      FunctionName: functionName,
      InvocationType: "Event",
      Payload: new TextEncoder().encode(JSON.stringify(payload)),
    }),
  );
}
