"""Sweeps: a YAML file -> trials (`spec`), each run by the one training pipeline (`trial`) on an
executor (`executors`), results (`results`), the run folder and loop (`runner`), tables and plots
(`report`). Nothing here imports the CLI.
"""
