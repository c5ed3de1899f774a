"""
Transforms template.yaml with AWS's own SAM translator (aws-sam-translator, the library behind
the AWS::Serverless-2016-10-31 transform) offline, and prints the CloudFormation JSON.

Offline it needs: a region (AWS_DEFAULT_REGION), an s3:// CodeUri for every function (what
`sam package` leaves there), and a managed-policy loader that never calls IAM (the template names
no AWS managed policy by name; SAM's own AWSLambdaBasicExecutionRole ARN is built without it).

Usage: python3 sam-transform.py TEMPLATE [PARAMS_JSON]
"""
import json
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


class OfflinePolicyLoader:
    """Stands in for ManagedPolicyLoader (which lists IAM policies): no names are resolved."""

    def load(self):
        return {}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        template = yaml_parse(f.read())
    params = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://artifacts-bucket/{logical_id}.zip"
    print(json.dumps(transform(template, params, OfflinePolicyLoader())))


if __name__ == "__main__":
    main()
