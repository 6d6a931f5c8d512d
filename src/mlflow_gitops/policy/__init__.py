"""Policies as code: CEL rules over each planned change, the pull request, the plan and the time."""
