#!/bin/sh
# Runs as root while the bento's image is built (bentofile.yaml, docker.setup_script).
#
# Mount points owned by the user the service runs as (bentoml): an empty named volume mounted on
# /datasets takes this ownership, so dataset jobs can write there (docker-compose.yml).
# /models is where compose mounts the models, read-only.
set -eu
mkdir -p /datasets /models
chown bentoml:bentoml /datasets
