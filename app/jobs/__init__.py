"""The job queue's executing side: runners (what a job kind does), backends (where it runs:
a child process, in-process, or a Ray task) and the dispatcher that claims, supervises and
finishes jobs. The database is the source of truth; executors receive job ids."""
