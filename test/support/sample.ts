import { SAMPLE } from "./cloudformation";

/** Sample deployment values shared by the contract tests (formats as AWS documents them). */
export const { region, account } = SAMPLE;
export const REPLICA = "eu-west-1";
export const AGENT_NAME = "buildkite/agent-token-AbCdEf";
export const agentIn = (r: string) => `arn:aws:secretsmanager:${r}:${account}:secret:${AGENT_NAME}`;
export const AGENT = agentIn(region);
// In another region than the stack on purpose: it is read in its own ARN's region.
export const API_TOKEN = `arn:aws:secretsmanager:eu-central-1:${account}:secret:buildkite/api-token-XyZ123`;
export const AGENT_KEY = `arn:aws:kms:${region}:${account}:key/11111111-2222-3333-4444-555555555555`;
export const API_KEY = `arn:aws:kms:eu-central-1:${account}:key/66666666-7777-8888-9999-000000000000`;
export const fn = (id: string) => `arn:aws:lambda:${region}:${account}:function:${SAMPLE.stack}-${id}-ABC123`;
export const QUEUE = `arn:aws:sqs:${region}:${account}:${SAMPLE.stack}-ReconcileQueue-ABC123.fifo`;
export const TOPIC = `arn:aws:sns:${region}:${account}:${SAMPLE.stack}-AlertTopic-ABC123`;
export const group = (r: string, name: string) =>
  `arn:aws:autoscaling:${r}:${account}:autoScalingGroup:8d7a1b2c-0000-4000-8000-123456789abc:autoScalingGroupName/${name}`;
export const GROUPS = [group(region, "ci-a"), group(REPLICA, "ci-b")];
/** The group CloudFormation made for the target stack `buildkite` (`<stack>-AgentAutoScaleGroup-<random>`). */
export const STACK_GROUP = group(region, "buildkite-AgentAutoScaleGroup-1A2B3C4D5E6F");
export const documentIn = (r: string) =>
  `arn:aws:ssm:${r}:${account}:document/BuildkiteAgentTokenRotation-InstallAgentToken`;
export const INSTANCE = `arn:aws:ec2:${REPLICA}:${account}:instance/i-0123456789abcdef0`;

export const FULL_PARAMS = {
  BuildkiteOrganization: "acme",
  BuildkiteClusterId: "01234567-89ab-cdef-0123-456789abcdef",
  BuildkiteApiTokenSecretArn: API_TOKEN,
  BuildkiteApiTokenKmsKeyArn: API_KEY,
  KmsKeyArn: AGENT_KEY,
  ReplicaRegions: [REPLICA],
  TargetGroups: [`${region}:ci-a`, `${REPLICA}:ci-b`],
  TargetStacks: [`${region}:buildkite`],
  ReadTokenAllowedPrincipals: ["222222222222"],
  ElasticStackInstanceRoleArns: [`arn:aws:iam::${account}:role/buildkite-Role`],
  ElasticStackScalerRoleArns: [
    `arn:aws:iam::${account}:role/buildkite-Autoscaling-1AB-ScalerFunctionRole-XYZ`,
  ],
};
