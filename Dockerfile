# syntax=docker/dockerfile:1
#
# calseta container image.
#   docker build -t calseta .
#   docker run --rm -p 127.0.0.1:8000:8000 -v calseta-data:/app/data calseta
# The default command is `serve`; other commands run the same way, e.g.
#   docker run --rm -e DATABASE_URL=postgres://… calseta migrate
#   docker run --rm -e DATABASE_URL=postgres://… calseta api-key list
# Without DATABASE_URL the embedded SQLite database is /app/data/calseta.db: mount a volume
# there to keep it. See docker-compose.yml for PostgreSQL + Redis.

# ---------------------------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# 1. Dependencies only, cached as long as Cargo.toml / Cargo.lock do not change: build the
#    dependency graph against stub targets. Every target declared in Cargo.toml needs a file
#    (src/lib.rs, src/main.rs and the [[bench]] "http" in benches/http.rs); the bench stub is
#    never compiled by `cargo build`.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && : > src/lib.rs \
 && echo 'fn main() {}' > benches/http.rs \
 && cargo build --release --locked \
 && rm -rf src

# 2. The application. Migrations are embedded into the binary at compile time
#    (sqlx::migrate!), so they are needed here and not at runtime.
COPY src ./src
COPY migrations ./migrations
# The stubs' build outputs are newer than the copied sources' timestamps: touch the crate
# roots so cargo rebuilds the crate instead of keeping the stub binary.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -m 0755 target/release/calseta /usr/local/bin/calseta \
 && /usr/local/bin/calseta --version

# ---------------------------------------------------------------------------------------------
# Runtime stage
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates: TLS to PostgreSQL and outbound services. python3 (3.11 on bookworm): the
# workflow sandbox's interpreter and the health probe below (no curl in the image); tzdata:
# zoneinfo for workflows.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 tzdata \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 calseta \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin calseta \
 && mkdir -p /app/data \
 && chown 10001:10001 /app/data

COPY --from=builder /usr/local/bin/calseta /usr/local/bin/calseta

WORKDIR /app
USER 10001:10001

# Listen on all interfaces inside the container; publish the port deliberately
# (e.g. 127.0.0.1:8000:8000, or behind a TLS-terminating proxy).
ENV CALSETA_BIND=0.0.0.0:8000 \
    PYTHONDONTWRITEBYTECODE=1
EXPOSE 8000

# Liveness only (the process answers HTTP). If you change CALSETA_BIND's port, change this too.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["/usr/local/bin/calseta"]
CMD ["serve"]
