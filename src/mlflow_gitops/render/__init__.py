"""Renderers: pure functions from a Plan (or an apply result) to text, Markdown or JSON."""
