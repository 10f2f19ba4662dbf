# Sourced by the set-up steps; not a step itself (scripts/test runs only the numbered ones).

# install_debian_packages PKG...: install those of PKG that are missing, without starting
# their system services (the tests run their own instances, bound to 127.0.0.1). Prints
# what it did; fails with the list when something is missing and we are not root.
install_debian_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "present: $*"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or install them yourself)" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps maintainer scripts from starting services (where an init system runs).
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  local rc=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  } || rc=$?
  [ "$created_policy" = 1 ] && rm -f "$policy"
  [ "$rc" -eq 0 ] && echo "installed: ${missing[*]}"
  return "$rc"
}
