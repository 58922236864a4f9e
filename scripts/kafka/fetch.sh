#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars (Scala 2.13 build + runtime dependencies
# + a logging binding) from Maven Central with mvn, into a per-version cache.
#
# Usage: scripts/kafka/fetch.sh
#
# Environment:
#   KAFKA_VERSION          Kafka version to fetch (default below)
#   EDGEHAUL_KAFKA_CACHE   cache dir (default $HOME/.cache/edgehaul/kafka-<version>)
#   MVN                    maven command (default: mvn)
#
# Output: the lib dir (directory holding all jars) as the only line on stdout;
# progress goes to stderr.
# Idempotent: if the cache is complete, prints the lib dir and exits at once.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
CACHE_DIR="${EDGEHAUL_KAFKA_CACHE:-$HOME/.cache/edgehaul/kafka-$KAFKA_VERSION}"
LIB_DIR="$CACHE_DIR/libs"
STAMP="$CACHE_DIR/.complete"
MVN="${MVN:-mvn}"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$KAFKA_VERSION" && -d "$LIB_DIR" ]]; then
  echo "$LIB_DIR"
  exit 0
fi

command -v "$MVN" >/dev/null 2>&1 || { echo "fetch.sh: '$MVN' not found (install maven)" >&2; exit 1; }
command -v java >/dev/null 2>&1 || { echo "fetch.sh: java not found (Kafka 4.x needs Java 17+)" >&2; exit 1; }

mkdir -p "$CACHE_DIR"
WORK="$(mktemp -d -t edgehaul-kafka-fetch.XXXXXX)"
TMP_LIB="$CACHE_DIR/libs.tmp.$$"
trap 'rm -rf "$WORK" "$TMP_LIB"' EXIT

cat >"$WORK/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>edgehaul.local</groupId>
  <artifactId>kafka-fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-server</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-storage</artifactId><version>$KAFKA_VERSION</version></dependency>
  </dependencies>
</project>
EOF

# mvn -q still prints bare ANSI resets; keep stderr clean.
run_mvn() { "$MVN" -q -B "$@" 2>&1 | sed -e "s/\x1b\[[0-9;]*m//g" -e "/^[[:space:]]*\$/d" >&2; }

echo "fetch.sh: fetching Kafka $KAFKA_VERSION into $CACHE_DIR ..." >&2
run_mvn -f "$WORK/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$TMP_LIB" >&2
[[ -f "$TMP_LIB/kafka_2.13-$KAFKA_VERSION.jar" ]] || {
  echo "fetch.sh: kafka_2.13-$KAFKA_VERSION.jar missing after mvn" >&2; exit 1; }

# Logging binding. The broker logs through slf4j 1.7; pick the binding that
# matches the logging API the Kafka poms already pulled in, at the same version.
copy_artifact() { # G:A:V
  run_mvn -f "$WORK/pom.xml" dependency:copy -Dartifact="$1" \
    -DoutputDirectory="$TMP_LIB" >&2
}
shopt -s nullglob
api_jars=("$TMP_LIB"/log4j-api-2.*.jar)
if (( ${#api_jars[@]} > 0 )); then
  # Kafka 4.x: log4j2
  v="$(basename "${api_jars[0]}" .jar)"; v="${v#log4j-api-}"
  [[ -f "$TMP_LIB/log4j-core-$v.jar" ]] || copy_artifact "org.apache.logging.log4j:log4j-core:$v"
  [[ -f "$TMP_LIB/log4j-slf4j-impl-$v.jar" ]] || copy_artifact "org.apache.logging.log4j:log4j-slf4j-impl:$v"
else
  # Kafka 3.x: reload4j (log4j 1.x API), unless its poms already brought it
  binding=("$TMP_LIB"/slf4j-reload4j-*.jar); reload=("$TMP_LIB"/reload4j-*.jar)
  (( ${#binding[@]} > 0 )) || copy_artifact "org.slf4j:slf4j-reload4j:1.7.36"
  (( ${#reload[@]} > 0 )) || copy_artifact "ch.qos.reload4j:reload4j:1.2.25"
fi

rm -rf "$LIB_DIR"
mv "$TMP_LIB" "$LIB_DIR"
echo "$KAFKA_VERSION" >"$STAMP"
jars=("$LIB_DIR"/*.jar)
echo "fetch.sh: done (${#jars[@]} jars)" >&2
echo "$LIB_DIR"
