"""AutoDistiller service: FastAPI routes, settings, persistence, jobs and the CLI.

Importing ``app`` must not import torch: training runs in worker child processes.
"""
