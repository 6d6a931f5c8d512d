"""GitHub: the pull request a job runs for, comment bodies, and a small REST client."""
