#!/usr/bin/env bash
# Fetch a stock Kafka Connect worker (connect-runtime with its runtime
# dependencies, the file connectors and JsonConverter) from Maven Central with
# mvn, into a per-version cache.
#
# Usage: scripts/kafka/fetch-connect.sh
# Environment: CONNECT_VERSION (default below), EDGEHAUL_CONNECT_CACHE,
#              MVN (default: mvn)
# Output: the lib dir as the only line on stdout; progress on stderr.
# Idempotent: when the cache is complete, prints the lib dir at once.
set -euo pipefail

MVN="${MVN:-mvn}"
# The worker's version: connect-file (FileStreamSink) is not on Maven Central
# for 4.4.0, and 4.3.0's does not load on a 4.4.0 worker (it calls a class of
# kafka-clients that moved), so the whole worker is 4.3.0; it talks to the
# 4.4.0 broker like any older client.
CONNECT_VERSION="${CONNECT_VERSION:-4.3.0}"
CACHE_DIR="${EDGEHAUL_CONNECT_CACHE:-$HOME/.cache/edgehaul/connect-$CONNECT_VERSION}"
LIB_DIR="$CACHE_DIR/libs"
STAMP="$CACHE_DIR/.complete"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$CONNECT_VERSION" && -d "$LIB_DIR" ]]; then
  echo "$LIB_DIR"
  exit 0
fi
command -v "$MVN" >/dev/null 2>&1 || { echo "fetch-connect.sh: '$MVN' not found (install maven)" >&2; exit 1; }

mkdir -p "$CACHE_DIR"
WORK="$(mktemp -d -t edgehaul-connect-fetch.XXXXXX)"
TMP_LIB="$CACHE_DIR/libs.tmp.$$"
trap 'rm -rf "$WORK" "$TMP_LIB"' EXIT

cat >"$WORK/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>edgehaul.local</groupId>
  <artifactId>connect-fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId><version>$CONNECT_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-file</artifactId><version>$CONNECT_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-json</artifactId><version>$CONNECT_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM

echo "fetch-connect.sh: fetching Kafka Connect $CONNECT_VERSION into $CACHE_DIR ..." >&2
"$MVN" -q -B -f "$WORK/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$TMP_LIB" >&2
[[ -f "$TMP_LIB/connect-runtime-$CONNECT_VERSION.jar" && -f "$TMP_LIB/connect-file-$CONNECT_VERSION.jar" ]] || {
  echo "fetch-connect.sh: connect jars missing after mvn" >&2; exit 1; }
# one logging binding: slf4j-simple (drop any other the poms pulled in)
rm -f "$TMP_LIB"/log4j-slf4j*-impl-*.jar "$TMP_LIB"/slf4j-reload4j-*.jar
rm -rf "$LIB_DIR"
mv "$TMP_LIB" "$LIB_DIR"
echo "$CONNECT_VERSION" >"$STAMP"
echo "$LIB_DIR"
