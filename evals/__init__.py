"""Evaluation: lighteval task definitions, the eval runner, fixture data and benchmarks."""
