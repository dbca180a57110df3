"""Tests of the bench/ scripts that must not rot between the machines they are run on."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gpu_rehearsal: bench/gpu_check.py --cpu-smoke, the CPU rehearsal of the GPU check (docs/gpu-check.md)")
