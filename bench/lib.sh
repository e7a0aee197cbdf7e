# Sourced by the bench scripts.
# need CMD PACKAGE: installs the Debian PACKAGE when CMD is missing (apt-get update once per run).
need() {
  command -v "$1" >/dev/null 2>&1 && return
  [ -n "${APT_UPDATED:-}" ] || { apt-get update -q >/dev/null; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
}
