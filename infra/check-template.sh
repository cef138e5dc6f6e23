#!/usr/bin/env bash
# Checks template.yaml with SAM's validator (`sam validate --lint`), cfn-lint and checkov. Every
# checkov finding we accept is suppressed in the template, next to the resource, with a reason.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
infra/venv.sh .venv-lint infra/requirements-lint.txt
infra/venv.sh .venv-checkov infra/requirements-checkov.txt
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
echo "cfn-lint template.yaml"
.venv-lint/bin/cfn-lint template.yaml
echo "sam validate --lint"
.venv-lint/bin/sam validate --lint --template-file template.yaml
echo "checkov"
.venv-checkov/bin/checkov -f template.yaml --framework cloudformation --quiet --compact --skip-download
