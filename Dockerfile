# Shark on Deno's official image.
#   docker build -t shark .
#   docker run --rm -p 9000:9000 shark                       # embedded defaults
#   docker run --rm -p 9000:9000 -v "$PWD/shark.json:/etc/shark/shark.json:ro" shark \
#     deno run --allow-net --allow-env --allow-read main.ts --config /etc/shark/shark.json
# deploy/compose.yaml runs two nodes on Redis behind a load balancer.
# The Deno version is .deno-version's (tests/deploy_test.ts holds the two equal).
FROM denoland/deno:2.9.6

WORKDIR /app
# Dependencies first: a change to the code alone does not download them again.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY main.ts mod.ts ./
COPY cli/ cli/
COPY src/ src/
COPY adapters/ adapters/
# Every module compiled at build time (cli/worker.ts is loaded by --workers).
RUN deno cache main.ts cli/worker.ts adapters/redis.ts

# The code and the module cache stay root's: the server cannot change them.
USER deno
EXPOSE 9000 9100
# SIGTERM (docker stop) starts the graceful shutdown: clients get 1001 and the
# unsubscribe callbacks run for up to server.shutdown_timeout (30 s by default),
# so give `docker stop -t` / stop_grace_period more than that.
STOPSIGNAL SIGTERM
CMD ["deno", "run", "--allow-net", "--allow-env", "--allow-read", "main.ts", "--host", "0.0.0.0"]
