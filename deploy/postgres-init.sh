#!/bin/sh
# Run once by the PostgreSQL image when it creates its database (/docker-entrypoint-initdb.d):
# the service's own role, which owns nothing; `promotion-service db upgrade`, run as the
# owner (POSTGRES_USER), grants it what it needs.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v role="$PROMOTION_DB_USER" -v password="$PROMOTION_DB_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
SQL
