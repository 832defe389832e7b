# Tessera: a two-stage image on Node 24 LTS (Debian slim), the target runtime (Node 20 keeps working
# and CI runs the suite on both). No Docker engine runs where this was written: it is kept simple and
# every step was checked by hand (see README, "Running with MongoDB").

# --- build: all dependencies, compile TypeScript, then drop the dev dependencies ----------------
FROM node:24-slim AS build
WORKDIR /app
# Compilers for native modules: argon2 falls back to building from source when its prebuilt binary
# does not load on this CPU/Node. Only this stage has them; the image that runs does not.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# Scripts are skipped here because `prepare` (tsc) needs the sources, which come next; this layer
# stays cached while only the sources change.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# argon2's install script checks its prebuilt binary (or compiles it); then the build, then prune.
RUN npm rebuild argon2 \
 && npx tsc -p tsconfig.json \
 && npm prune --omit=dev --no-audit --no-fund

# --- runtime: production dependencies and the compiled server, as a non-root user ------------------
FROM node:24-slim
ENV NODE_ENV=production \
    PORT=9000 \
    TESSERA_DATA_DIR=/data
WORKDIR /app
# Owned by root: the server's own user cannot change its code or dependencies.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY bin ./bin
RUN mkdir -p /data && chown node:node /data
USER node
# The embedded store (and its generated secret.key) lives here; with TESSERA_MONGODB_URI it stays empty.
VOLUME ["/data"]
EXPOSE 9000
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 9000) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node directly (not npm start): SIGTERM reaches the server, which drains and exits 0.
CMD ["node", "dist/src/main.js"]
