# Sourced by ./mqnbd, ./mvnw and scripts/test: points JAVA_HOME at a JDK 25 or newer.
# The default java on Debian bookworm is 17, so an unsuitable JAVA_HOME or PATH java is
# replaced by the first JDK 25+ found under /usr/lib/jvm; if there is none, this says what to install.

mqnbd_java_feature() { # prints the feature release of the java at $1 (e.g. 25), or nothing
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}

mqnbd_find_jdk() {
  local required=25 candidate feature restore_noglob=
  case $- in *f*) restore_noglob=1; set +f ;; esac
  for candidate in ${JAVA_HOME:+"$JAVA_HOME"} /usr/lib/jvm/temurin-25-jdk* /usr/lib/jvm/java-25-* /usr/lib/jvm/*-2[5-9]* /usr/lib/jvm/*; do
    [ -x "$candidate/bin/java" ] && [ -x "$candidate/bin/javac" ] || continue
    feature=$(mqnbd_java_feature "$candidate/bin/java")
    if [ -n "$feature" ] && [ "$feature" -ge "$required" ]; then
      printf '%s\n' "$candidate"
      [ -z "$restore_noglob" ] || set -f
      return 0
    fi
  done
  [ -z "$restore_noglob" ] || set -f
  return 1
}

if ! MQNBD_JAVA_HOME=$(mqnbd_find_jdk); then
  echo "mqnbd needs a JDK 25 or newer and found none (JAVA_HOME='${JAVA_HOME:-}', none under /usr/lib/jvm)." >&2
  echo "Install one, e.g. Eclipse Temurin 25 (package temurin-25-jdk from packages.adoptium.net), or set JAVA_HOME to a JDK 25." >&2
  exit 1
fi
export JAVA_HOME="$MQNBD_JAVA_HOME"
unset MQNBD_JAVA_HOME
