# Pipebook's image: the workbench (`pipebook serve`) and its worker processes
# (`pipebook worker --stage …`) from one binary. Built from the workspace with the same script as
# ./scripts/run (plain cargo + wasm-split-cli + wasm-bindgen + wasm-opt, the `serve` profile), so the image and a
# laptop run the same build. Used by docker-compose.yml; see docs/scale-out.md.
#
#   docker build -t pipebook .
FROM rust:1.95-bookworm AS build
# npm installs wasm-opt (binaryen) for the front end, exactly as scripts/tools.sh does on a laptop.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/target CARGO_INCREMENTAL=0
# The caches keep the crates.io downloads and the build between image builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/target \
    bash -c 'source scripts/tools.sh && scripts/site --release \
      && mkdir -p /out && cp /target/serve/pipebook /out/pipebook && cp -R target/site /out/site'

FROM debian:bookworm-slim
# librdkafka is linked in statically; it needs OpenSSL (SSL / SASL_SSL) and the CA roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /data pipebook \
 && mkdir -p /data && chown pipebook /data
COPY --from=build /out/pipebook /usr/local/bin/pipebook
COPY --from=build /out/site /app/site
ENV LEPTOS_SITE_ROOT=/app/site LEPTOS_ENV=PROD PIPEBOOK_DATA_DIR=/data
USER pipebook
WORKDIR /data
VOLUME /data
EXPOSE 3000
ENTRYPOINT ["pipebook"]
# Listening beyond loopback turns the access token on: the operator and viewer links are printed
# on stdout (`docker compose logs pipebook`), or set PIPEBOOK_TOKEN.
CMD ["serve", "--addr", "0.0.0.0:3000"]
