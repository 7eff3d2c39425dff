# dicom-pdu-proxy as a container: `docker build -t dicom-pdu-proxy .`, then
#   docker run -p 11112:11112 -v dpp-logs:/logs dicom-pdu-proxy --upstream pacs:104 --max-pdu 1MB --csv chunks.csv
# Everything after the image name reaches the CLI (exec-form ENTRYPOINT below), and so does a compose `command:`.
# Settings can also come from PDU_PROXY_* variables (docs/CONFIGURATION.md). test/unit/dockerfile.test.ts checks
# this file: keep ENTRYPOINT in exec form, the steps CI runs, a non-root USER, EXPOSE 11112 and the log VOLUME.

# ---- build: the same commands as CI (.ci/run): `npm ci`, whose `prepare` script is `npm run build` (tsc) ----
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# npm ci installs the dev dependencies (typescript) and runs `prepare`, i.e. `npm run build`, into dist/.
RUN npm ci
# Then drop the dev dependencies, and the optional analytical engine of `stats` and the report (DuckDB, 69 MB
# of node_modules: 99 MB without it, 168 MB with it); the proxy never loads it, and `stats` in this image says
# in one line how to add it. The runtime stage copies this node_modules as it is.
RUN npm prune --omit=dev --omit=optional

# ---- runtime: production dependencies, the compiled CLI, its launcher and config/default.json ----
FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY config ./config
# Loading every module of the CLI proves the production dependencies are enough.
RUN node /app/bin/dicom-pdu-proxy.js --version

# CSV logs: a volume owned by the unprivileged user, and the working directory, so that `--csv chunks.csv`
# lands in it. (A bind mount keeps the host directory's owner: it must be writable by uid 1000.)
RUN mkdir -p /logs && chown node:node /logs
VOLUME ["/logs"]
WORKDIR /logs

# The node image's `node` user, numeric so that runtimes can check it is not root (runAsNonRoot).
USER 1000:1000

# DICOM port the modalities connect to (--listen / PDU_PROXY_LISTEN default 0.0.0.0:11112).
EXPOSE 11112

# Health endpoints, GET /healthz and /readyz (--health / PDU_PROXY_HEALTH; docs/CONFIGURATION.md). The
# HEALTHCHECK probes /readyz at this address from inside the container (bin/healthcheck.js): healthy once every
# listener is up, unhealthy while draining. Set PDU_PROXY_HEALTH to move it (the probe reads the same variable).
ENV PDU_PROXY_HEALTH=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["node", "/app/bin/healthcheck.js"]

# Exec form: node is PID 1 and gets SIGTERM (the proxy shuts down cleanly on it), and `docker run IMAGE ARGS...`
# / compose `command:` arguments are appended to it. A shell-form ENTRYPOINT would drop them. No CMD: with no
# arguments the proxy runs from PDU_PROXY_* variables alone.
ENTRYPOINT ["node", "/app/bin/dicom-pdu-proxy.js"]
