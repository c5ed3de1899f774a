# `sam build` builds each function with this Makefile (Metadata: BuildMethod: makefile in
# template.yaml). aws-lambda-builders' custom_make workflow copies the CodeUri (the project root)
# into a scratch directory, leaving out only .aws-sam and .git, and runs
#   make --makefile <CodeUri>/Makefile build-<LogicalId>
# in that copy with ARTIFACTS_DIR in the environment
# (aws/aws-lambda-builders: aws_lambda_builders/workflows/custom_make/workflow.py, actions.py;
# https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/building-custom-runtimes.html:
# the makefile method works for the managed runtimes too, with the Makefile at the CodeUri).
# SAM never merges makefile builds that share a CodeUri (aws/aws-sam-cli:
# samcli/lib/build/build_graph.py, FunctionBuildDefinition.__eq__), so every target below runs.
#
# Each target installs the locked dependencies when the copy has none or older ones (a fresh
# clone has no node_modules), then runs the project's own bundler, which writes exactly
# index.mjs and index.mjs.map into ARTIFACTS_DIR: the same bytes `npm run build` produces.

FUNCTIONS := build-RotateTokenFunction build-ReconcileFunction build-ReadTokenFunction
.PHONY: $(FUNCTIONS)

build-RotateTokenFunction: BUNDLE := rotate-token
build-ReconcileFunction: BUNDLE := reconcile
build-ReadTokenFunction: BUNDLE := read-token

$(FUNCTIONS): node_modules/.package-lock.json
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: run sam build (or npm run build)" >&2; exit 1; }
	node --import tsx scripts/build.ts --only $(BUNDLE) --artifacts-dir "$(ARTIFACTS_DIR)"

# npm ci writes node_modules/.package-lock.json; it is older than the lockfile when stale.
node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
