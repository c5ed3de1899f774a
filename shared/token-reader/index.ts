/** The token reader's public API: library, sources, Lambda config and caller authorization. */

export { classifyAwsFailure as classifyFailure, type FailureKind } from "../lib/aws/errors";
export { loadReadTokenConfig, type ReadTokenConfig } from "./config";
export { type RegionFailure, TokenReadError } from "./errors";
export { type AllowedPrincipals, authorize, type CallerIdentity, parseAllowedPrincipals } from "./principals";
export {
  createTokenReader,
  type ReadOptions,
  type TokenReader,
  type TokenReaderOptions,
  type TokenValue,
} from "./reader";
export { secretsManagerSource } from "./secrets-manager-source";
export {
  type FetchedToken,
  referenceParameterName,
  secretIdForRegion,
  type TokenFetcher,
  type TokenSource,
} from "./sources";
export { ssmReferenceSource } from "./ssm-source";
