"""What the Prefect UI shows of dbnd runs: task-run labels, data-flow artifacts and lineage events.

`labels` sets a task run's Version, Tags and Cache Key; `data_flow` collects what each task run read and
wrote and publishes it in the background; `io_artifacts` renders it as markdown artifacts; `lineage` emits
output and asset events.
"""
