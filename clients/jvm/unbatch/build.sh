#!/usr/bin/env bash
# Builds the runnable jar (target/edgehaul-unbatch-0.1.0.jar): the JVM decoder
# (clients/jvm) into the local Maven repository first, then this module.
# Offline from ~/.m2 when it has everything, else Maven Central once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mvn_q() { mvn -B -q -o "$@" 2>/dev/null || mvn -B -q "$@"; }
(cd "$here/.." && mvn_q install -DskipTests)
(cd "$here" && mvn_q package -DskipTests)
echo "$here/target/edgehaul-unbatch-0.1.0.jar"
