"""Synthetic datasets at scale: sharded, reproducible, resumable generation (`python -m service
generate`, and the server's `generate_dataset` task). See docs/DATASETS.md.

plan.py      what a dataset is (its spec) and which seeds make each shard
sources.py   where samples come from: a local model folder, or one or many servers over HTTP
writer.py    shard files: written to a temporary name, fsynced, checksummed, renamed when whole
storage.py   where they go: a local folder, or object storage (s3://...) through fsspec
formats.py   Parquet and WebDataset shards, encoded in memory and written as one file each
manifest.py  manifest.json: read, checked against the spec, merged and replaced atomically
job.py       the loop: shards in parallel, skipping verified ones, behind a progress bar
task.py      the server's `generate_dataset` task: checks (`plan`), then the job
limits.py    a dataset's size on disk, and the server's disk budget for its jobs
control.py   the server's running jobs: how many at once, and their cancel
routes.py    the task's submit checks and its cancel route, served ahead of BentoML's
ray_job.py   the same loop with the shards made by Ray actors (`--ray`); the driver writes the manifest
"""
