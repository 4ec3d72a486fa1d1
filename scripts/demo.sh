#!/usr/bin/env bash
# make demo: a throwaway PostgreSQL container named postgres-pim (the PIM team's set-up: user pim_user,
# databases pim_dev and pim_prod seeded with a small PIM schema), a backup of it with playbooks/backup.yml and
# the example inventory, the proof that it restores (playbooks/restore_drill.yml), then the list and stats.
# Re-runnable: the container (labelled pgops.demo) is reused. Remove it with: docker rm -f postgres-pim
# usage: scripts/demo.sh   (after scripts/ensure-docker.sh, scripts/images.sh, scripts/install-venv.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
NAME=${PGOPS_DEMO_CONTAINER:-postgres-pim}
IMAGE=${PGOPS_IMAGE_15:-pgops/postgres:15}
OUT=$ROOT/.cache/demo
VENV=${VENV:-$ROOT/.venv}
mkdir -p "$OUT"

if docker container inspect "$NAME" >/dev/null 2>&1; then
  if [ "$(docker container inspect -f '{{ index .Config.Labels "pgops.demo" }}' "$NAME")" != 1 ]; then
    echo "demo: a container named $NAME exists and is not the demo's; set PGOPS_DEMO_CONTAINER=another-name" >&2
    exit 1
  fi
  [ "$(docker container inspect -f '{{.State.Running}}' "$NAME")" = true ] || docker start "$NAME" >/dev/null
else
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
  # the password goes through the environment (-e NAME without a value), never on a command line
  POSTGRES_PASSWORD=$PASSWORD docker run -d --name "$NAME" --label pgops.demo=1 --network host \
    -e POSTGRES_USER=pim_user -e POSTGRES_PASSWORD -e POSTGRES_DB=pim_dev -e PGPORT="$PORT" \
    "$IMAGE" postgres >/dev/null
fi
for _ in $(seq 1 60); do
  docker exec "$NAME" pg_isready -q -U pim_user -d pim_dev 2>/dev/null && break
  sleep 0.5
done
docker exec "$NAME" pg_isready -U pim_user -d pim_dev >/dev/null || { docker logs --tail 30 "$NAME" >&2; exit 1; }
docker exec "$NAME" psql -X -q -U pim_user -d pim_dev -tAc "SELECT 1 FROM pg_database WHERE datname = 'pim_prod'" |
  grep -q 1 || docker exec "$NAME" createdb -U pim_user pim_prod
for db in pim_dev pim_prod; do
  docker exec -i "$NAME" psql -X -q -v ON_ERROR_STOP=1 -U pim_user -d "$db" < scripts/seed/pim.sql
done
echo "demo: $NAME is up ($(docker exec "$NAME" psql -X -U pim_user -d pim_dev -tAc 'SHOW server_version'))," \
     "pim_dev and pim_prod seeded"

# shellcheck disable=SC1091
. "$VENV/bin/activate"
EXTRA=(-e "pgops_backup_dir=$OUT/backups" -e "pgops_log_file=$OUT/db-backup.log" -e "pgops_container=$NAME")
ansible-playbook -i playbooks/inventory/pim.yml playbooks/backup.yml "${EXTRA[@]}"
# a backup is only as good as its last restore: prove both, each in a scratch database, recorded in the metadata
ansible-playbook -i playbooks/inventory/pim.yml playbooks/restore_drill.yml "${EXTRA[@]}" -e restore_drill_count=2
ansible-playbook -i playbooks/inventory/pim.yml playbooks/list_backups.yml "${EXTRA[@]}"
echo
echo "demo: backups in $OUT/backups, log in $OUT/db-backup.log:"
tail -n 2 "$OUT/db-backup.log"
echo "demo: restore audit ($OUT/backups/restore-audit.jsonl):"
tail -n 2 "$OUT/backups/restore-audit.jsonl"
