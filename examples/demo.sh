#!/usr/bin/env bash
# One command, fresh machine: set up the environment and run the demo on the embedded default
# registry (sqlite:///mlflow.db next to registry.yaml). Extra arguments go to the demo, e.g.
#   bash examples/demo.sh --data ../shared/data/nyc-green-taxi   # the real TLC files
#   bash examples/demo.sh --reset                                 # start from an empty registry
#   bash examples/demo.sh --s3       # the PR's gate reads March from s3:// (moto on loopback)
#   bash examples/demo.sh --promote  # the second demo: a version promoted from dev to prod
set -euo pipefail
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"  # the demo calls nothing but its registry
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
for arg in "$@"; do
  if [ "$arg" = "--s3" ]; then
    .venv/bin/python -m pip install --quiet 'moto[server]>=5'  # the S3-compatible server
  fi
done
exec .venv/bin/python -m mlflow_gitops.demo "$@"
