import { EC2Client } from "@aws-sdk/client-ec2";
import { awsClientOptions, perRegion } from "./client-options";

export type { EC2Client };

/** Factory by region, so replica regions are first-class (and each test can point anywhere). */
export const ec2Clients = () => perRegion((region) => new EC2Client(awsClientOptions(region)));
